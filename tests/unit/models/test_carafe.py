"""CARAFE as an SRM mode: the reassembly equals its definition (a naive loop), kernels are normalised, a one-hot
kernel is nearest-neighbour upsampling, it trains, its compute is counted and it exports (integration tests)."""

import pytest
import torch
import torch.nn.functional as F

import scrnet
from scrnet.models.carafe import CARAFE
from scrnet.models.srm import SRM


def naive(g: torch.Tensor, weights: torch.Tensor, k: int) -> torch.Tensor:
    """CARAFE's formula, pixel by pixel: fine (i', j') = sum over the k x k neighbourhood of coarse (i'//2, j'//2)
    of kernel(i', j')[n, m] * g(i'//2 + n, j'//2 + m), zero outside the map."""
    b, c, h, w = g.shape
    r = k // 2
    out = torch.zeros(b, c, 2 * h, 2 * w, dtype=torch.float64)
    for i2 in range(2 * h):
        for j2 in range(2 * w):
            i, j, phase = i2 // 2, j2 // 2, (i2 % 2) * 2 + (j2 % 2)
            for n in range(-r, r + 1):
                for m in range(-r, r + 1):
                    if 0 <= i + n < h and 0 <= j + m < w:
                        kk = (n + r) * k + (m + r)
                        out[:, :, i2, j2] += weights[:, kk, phase, i, j, None].double() * g[:, :, i + n, j + m].double()
    return out


@pytest.mark.parametrize("size,k", [((4, 5), 5), ((3, 3), 3)])
def test_reassembly_is_the_papers_formula(size, k):
    torch.manual_seed(0)
    m = CARAFE(6, kernel=k, encoder_kernel=3, compressed=8)
    torch.nn.init.normal_(m.encode.weight, std=0.5)  # kernels far from uniform
    g = torch.randn(2, 6, *size)
    weights = m.kernels(g)
    assert weights.shape == (2, k * k, 4, *size)
    torch.testing.assert_close(weights.sum(1), torch.ones(2, 4, *size))
    torch.testing.assert_close(m(g).double(), naive(g, weights, k), rtol=0, atol=1e-5)


def test_a_one_hot_centre_kernel_is_nearest_neighbour_upsampling():
    m = CARAFE(4, kernel=5)
    torch.nn.init.zeros_(m.encode.weight)
    bias = torch.full((100,), -1e4)
    bias[12 * 4:13 * 4] = 0.0  # the centre tap (k = 12) of every phase
    m.encode.bias.data = bias
    g = torch.randn(1, 4, 6, 7)
    torch.testing.assert_close(m(g), F.interpolate(g, scale_factor=2, mode="nearest"), rtol=0, atol=1e-6)


def test_uniform_kernels_average_each_neighbourhood():
    """Where a fresh CARAFE starts (its encoder at std 0.001): kernels near 1/25, a 5x5 box filter."""
    m = CARAFE(3)
    torch.nn.init.zeros_(m.encode.weight)
    g = torch.randn(1, 3, 6, 6)
    box = F.avg_pool2d(F.pad(g, (2, 2, 2, 2)), 5, stride=1, count_include_pad=True)  # zero outside, / 25
    torch.testing.assert_close(m(g), F.interpolate(box, scale_factor=2, mode="nearest"), rtol=0, atol=1e-6)


def test_srm_in_carafe_mode_trains_and_reports_no_offsets():
    srm = SRM(6, 8, mode="carafe", mask_input="hidden", sample_from="coarse", carafe=(3, 3, 4))
    g, f = torch.randn(2, 8, 5, 6, requires_grad=True), torch.randn(2, 6, 10, 12)
    out, offsets = srm(g, f, return_offsets=True)
    out.sum().backward()
    assert out.shape == (2, 8, 10, 12) and offsets is None
    assert srm.carafe.encode.weight.grad.abs().sum() > 0 and g.grad is not None
    assert {id(p) for p in srm.offset_parameters()} == {id(p) for p in srm.carafe.parameters()}


def test_config_options_are_checked_and_reach_the_module():
    model = scrnet.create_model("scrnet_r18", srm={"mode": "carafe", "carafe_kernel": 3, "carafe_channels": 32})
    carafe = model.decoder.refine[0].carafe
    assert carafe.kernel == 3 and carafe.compress.out_channels == 32 and carafe.encode.out_channels == 4 * 9
    with pytest.raises(ValueError, match="model.srm.carafe_kernel must be a positive odd integer"):
        scrnet.create_model("scrnet_r18", srm={"mode": "carafe", "carafe_kernel": 4})


def test_counted_by_flops_with_the_reassembly():
    from scrnet.models import model_config
    from scrnet.profiling.flops import compute_report

    size = (256, 512)
    bilinear = compute_report(model_config("scrnet_effl0", ["srm.mode=bilinear"]), size)
    carafe = compute_report(model_config("scrnet_effl0", ["srm.mode=carafe"]), size)
    c = model_config("scrnet_effl0").channels
    coarse = sum((size[0] // s) * (size[1] // s) for s in (32, 16, 8))  # the three steps' input maps
    # compressor, encoder, reassembly (4 fine pixels x 25 taps x C channels) per coarse pixel; the bilinear
    # upsampling (4 MACs per fine pixel and channel) is what CARAFE replaces
    per_pixel = c * 64 + 64 * 100 * 9 + 4 * 25 * c
    expected = coarse * (per_pixel - 4 * 4 * c) / 1e9
    assert carafe.gmacs - bilinear.gmacs == pytest.approx(expected, rel=1e-6)
    assert carafe.ops["bmm"] >= coarse * 4 * 25 * c / 1e9 * (1 - 1e-9)
