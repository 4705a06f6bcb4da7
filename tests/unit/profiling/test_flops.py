import warnings

import pytest
import torch

import scrnet
from scrnet.models.srm import SRM
from scrnet.profiling.flops import compute_report, count_macs

SIZE = (64, 128)


FVCORE_TO_OURS = {"conv": "convolution", "bmm": "bmm", "upsample_bilinear2d": "upsample_bilinear2d",
                  "grid_sampler": "grid_sampler_2d", "linear": "addmm"}


@pytest.mark.parametrize("name", scrnet.list_models())
def test_counts_agree_with_fvcore(name):
    fvcore = pytest.importorskip("fvcore.nn")  # in the dev extra
    model = scrnet.create_model(name).eval()
    x = torch.zeros(1, 3, *SIZE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        analysis = fvcore.FlopCountAnalysis(model, x).unsupported_ops_warnings(False)
        theirs = {FVCORE_TO_OURS[k]: v for k, v in analysis.by_operator().items() if k in FVCORE_TO_OURS}
    _, ours, _ = count_macs(model, SIZE)
    if model.cfg.context.type == "ppm":
        # PPM pools with broadcast matmuls, which fvcore miscounts; check them against a hand count instead:
        # (bins x H) @ x is C*b*H*W MACs, then (.. x W) @ (W x bins) is C*b*W*b, at stride 32
        c, h, w = model.backbone.channels[-1], SIZE[0] // 32, SIZE[1] // 32
        pooled = ours.pop("bmm", 0) + ours.pop("mm", 0)  # torch picks bmm or mm by shape
        assert pooled == sum(c * b * h * w + c * b * w * b for b in model.cfg.context.ppm_bins)
        assert "matmul" in analysis.by_operator()
    assert ours == theirs
    assert {"convolution", "upsample_bilinear2d"} <= set(ours)


def test_srm_count_equals_hand_count():
    c_in, c, hidden, h, w = 24, 16, 8, 10, 14  # f is h x w, g is half that
    srm = SRM(c_in, c, mode="neighbor", hidden_channels=hidden, mask_input="guide", sample_from="upsampled").eval()
    hw = h * w
    hand = {
        "convolution": hw * (c_in * c  # lateral 1x1
                             + c * hidden  # offset branch 1x1, f' half (the u half runs on g: next line)
                             + 2 * c * 9 * 9  # mask 3x3 to 9 logits (u half + f' half)
                             + hidden * 2 * 9  # offset 3x3 to (dx, dy)
                             + c * c * 9)  # output 3x3
        + (hw // 4) * c * hidden,  # offset branch 1x1, u half, on g (it commutes with the upsampling)
        "upsample_bilinear2d": 4 * c * hw + 4 * hidden * hw,  # u = bilinear(g), and the 1x1 of g: 4 MACs per output
        "grid_sampler_2d": 4 * c * hw,  # a = grid_sample(u, ...)
    }

    class Wrap(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.srm = srm

        def forward(self, x):
            return self.srm(x[:, :c, : h // 2, : w // 2], x[:, :c_in])

    total, ops, _ = count_macs(Wrap(), (h, w), channels=c_in)
    assert ops == hand and total == sum(hand.values())


def test_resnet18_backbone_matches_the_published_figure():
    # torchvision lists ResNet-18 at 1.81 GFLOPS (MACs) for 224x224 including its 0.5 M-MAC classifier
    from scrnet.models.backbones.resnet import resnet18

    total, _, _ = count_macs(resnet18(num_classes=1000).eval(), (224, 224))
    assert 1.81e9 <= total <= 1.82e9


def test_meta_device_report_equals_a_real_count():
    report = compute_report("scrnet_r18", SIZE)
    total, _, _ = count_macs(scrnet.create_model("scrnet_r18").eval(), SIZE)
    assert report.gmacs == total / 1e9
    assert report.params_m == scrnet.create_model("scrnet_r18").num_params() / 1e6
    assert sum(report.parts.values()) == pytest.approx(report.gmacs)
    assert sum(report.ops.values()) == pytest.approx(report.gmacs)


def test_light_variant_is_within_the_papers_budget():
    assert compute_report("scrnet_van_b1").gmacs <= 137.9


def test_srm_overhead_in_compute_is_small():
    fpn, scr = compute_report("fpn_r18").gmacs, compute_report("sfnet_r18").gmacs
    assert scr > fpn and scr / fpn < 1.05
