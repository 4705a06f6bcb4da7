"""DySample as SRM's baseline mode: zero offsets are bilinear upsampling, offsets move samples by the stated number
of coarse pixels per group, everything in float32, counted and exported like SRM."""

import pytest
import torch
import torch.nn.functional as F

import scrnet
from scrnet.models.dysample import DySample
from scrnet.models.srm import SRM


def zeroed(m: DySample) -> DySample:
    torch.nn.init.zeros_(m.offset.weight)
    return m


@pytest.mark.parametrize("size", [(8, 12), (5, 7)])
def test_zero_offsets_are_bilinear_upsampling(size):
    g = torch.randn(2, 16, *size)
    out, offsets = zeroed(DySample(16, 4))(g)
    expected = F.interpolate(g, scale_factor=2, mode="bilinear", align_corners=False)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)
    assert offsets.shape == (2, 2, 2 * size[0], 2 * size[1]) and offsets.abs().max() == 0


def test_a_constant_offset_shifts_each_group_by_that_many_coarse_pixels():
    m = zeroed(DySample(8, 2))
    g = torch.arange(16.0).repeat(1, 8, 6, 1)  # every row 0..15 along x
    # offset channels (before pixel shuffle): [dx of group 0 (4 sub-pixels), dx of group 1, dy group 0, dy group 1]
    bias = torch.zeros(16)
    bias[:4] = 4.0  # group 0: dx = 4 * 0.25 = 1 coarse pixel
    bias[4:8] = -8.0  # group 1: dx = -2 coarse pixels
    m.offset.bias.data = bias
    out, offsets = m(g)
    base = F.interpolate(g, scale_factor=2, mode="bilinear", align_corners=False)
    inner = slice(8, 20)  # away from the border, where sampling is clamped
    torch.testing.assert_close(out[:, :4, :, inner], base[:, :4, :, inner] + 1.0)
    torch.testing.assert_close(out[:, 4:, :, inner], base[:, 4:, :, inner] - 2.0)
    # reported offsets: the mean over groups, in fine pixels: (2 - 4) / 2 = -1 fine pixel in x, 0 in y
    torch.testing.assert_close(offsets[:, 0], torch.full_like(offsets[:, 0], -1.0))
    assert offsets[:, 1].abs().max() == 0


def test_dynamic_scope_starts_at_the_static_scope():
    torch.manual_seed(0)
    static, dynamic = DySample(8, 2, "static"), DySample(8, 2, "dynamic")
    dynamic.offset.load_state_dict(static.offset.state_dict())
    g = torch.randn(1, 8, 6, 6)
    torch.testing.assert_close(static(g)[0], dynamic(g)[0])


def test_bad_groups_and_scope_fail_with_the_key():
    with pytest.raises(ValueError, match="divide"):
        DySample(10, 4)
    with pytest.raises(ValueError, match="scope"):
        DySample(8, 4, "wide")
    with pytest.raises(ValueError, match="model.srm.dysample_groups"):
        scrnet.create_model("scrnet_r18", srm={"mode": "dysample", "dysample_groups": 3})
    with pytest.raises(ValueError, match="model.srm.dysample_scope"):
        scrnet.create_model("scrnet_r18", srm={"mode": "dysample", "dysample_scope": "wide"})


def test_float32_sampling_under_bf16_autocast():
    m = DySample(8, 4)
    g = torch.randn(1, 8, 4, 1024)
    expected, _ = m(g)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, offsets = m(g)
    assert offsets.dtype == torch.float32
    # only the 1x1 offset conv runs in bf16: the grid is exact, so the result stays within bf16's offset rounding
    assert (out.float() - expected).abs().max() < 1e-2


def test_srm_in_dysample_mode_trains_and_has_no_high_res_guidance():
    srm = SRM(6, 8, mode="dysample", mask_input="guide", sample_from="upsampled")
    assert not hasattr(srm, "offset_hidden") and not hasattr(srm, "mask")
    g, f = torch.randn(2, 8, 5, 7, requires_grad=True), torch.randn(2, 6, 10, 14)
    out, offsets = srm(g, f, return_offsets=True)
    assert out.shape == (2, 8, 10, 14) and offsets.shape == (2, 2, 10, 14)
    out.square().mean().backward()
    assert srm.dysample.offset.weight.grad.abs().sum() > 0 and g.grad is not None
    # the offsets do not depend on f: changing the guide map leaves them unchanged
    torch.testing.assert_close(srm(g, torch.randn_like(f), return_offsets=True)[1], offsets)


def test_counted_by_flops_and_dearer_than_bilinear():
    from scrnet.models import model_config
    from scrnet.profiling.flops import compute_report

    bilinear = compute_report(model_config("scrnet_effl0", ["srm.mode=bilinear"]), (256, 512))
    dysample = compute_report(model_config("scrnet_effl0", ["srm.mode=dysample"]), (256, 512))
    assert dysample.parts["srm"] > bilinear.parts["srm"]
