
import pytest
import torch
import torch.nn.functional as F

from scrnet.models.sampling import gather_sample
from scrnet.models.srm import SRM, base_grid, neighbor_offsets, upsample_bilinear, warp


def make_srm(mode="neighbor", c_in=6, c=8):
    return SRM(c_in, c, mode=mode, mask_input="guide", sample_from="upsampled").eval()


@pytest.mark.parametrize("size", [(16, 32), (64, 128)])
def test_zero_offsets_reproduce_bilinear_bitwise_at_power_of_two_sizes(size):
    u = torch.randn(2, 5, *size)
    assert torch.equal(warp(u, torch.zeros(2, 2, *size)), u)


@pytest.mark.parametrize("size", [(17, 23), (49, 66), (97, 131)])
def test_zero_offsets_reproduce_bilinear_at_any_size(size):
    # grid_sample's normalised coordinates carry float32 rounding (~1e-6 pixel at these sizes); nothing else differs
    u = torch.randn(2, 5, *size)
    torch.testing.assert_close(warp(u, torch.zeros(2, 2, *size)), u, rtol=0, atol=1e-4)


def test_fresh_srm_is_exactly_bilinear_upsampling():
    srm = make_srm()
    g, f = torch.randn(2, 8, 8, 16), torch.randn(2, 6, 16, 32)
    out, offsets = srm(g, f, return_offsets=True)
    assert torch.count_nonzero(offsets) == 0
    f_lat = srm.lateral(f)
    expected = srm.out(upsample_bilinear(g, f_lat) + f_lat)
    assert torch.equal(out, expected)
    bilinear = make_srm("bilinear")
    bilinear.load_state_dict(srm.state_dict(), strict=False)
    assert torch.equal(bilinear(g, f), out)


def test_offset_down_one_row_moves_the_map_by_exactly_one_row():
    u = torch.randn(1, 3, 16, 32)
    offsets = torch.zeros(1, 2, 16, 32)
    offsets[:, 1] = 1.0  # (dx, dy) = (0, 1)
    a = warp(u, offsets)
    assert torch.equal(a[:, :, :-1], u[:, :, 1:])
    assert torch.equal(a[:, :, -1], u[:, :, -1])  # border padding at the last row


def test_offset_right_one_column_and_half_pixel():
    u = torch.randn(1, 3, 16, 32)
    offsets = torch.zeros(1, 2, 16, 32)
    offsets[:, 0] = 1.0
    assert torch.equal(warp(u, offsets)[..., :-1], u[..., 1:])
    offsets[:, 0] = 0.5
    torch.testing.assert_close(warp(u, offsets)[..., :-1], (u[..., :-1] + u[..., 1:]) / 2)


def test_offset_at_odd_size_shifts_one_row():
    u = torch.randn(1, 3, 17, 23)
    offsets = torch.zeros(1, 2, 17, 23)
    offsets[:, 1] = 1.0
    torch.testing.assert_close(warp(u, offsets)[:, :, :-1], u[:, :, 1:], rtol=0, atol=1e-4)


def test_base_grid_is_pixel_centres():
    xs, ys = base_grid(torch.zeros(2, 4, 3, 5))
    assert xs.flatten().tolist() == [0.5, 1.5, 2.5, 3.5, 4.5]
    assert ys.flatten().tolist() == [0.5, 1.5, 2.5]


def test_neighbor_weighting_equals_hand_computation():
    b, h, w = 1, 3, 4
    d0 = torch.arange(2 * h * w, dtype=torch.float32).reshape(b, 2, h, w) / 7 - 1
    logits = torch.randn(b, 9, h, w)
    got = neighbor_offsets(d0, logits)
    weights = logits.softmax(1)
    expected = torch.zeros(b, 2, h, w)
    for y in range(h):
        for x in range(w):
            for k in range(9):
                ny, nx = y + k // 3 - 1, x + k % 3 - 1  # row-major 3x3 neighbourhood
                if 0 <= ny < h and 0 <= nx < w:
                    expected[0, :, y, x] += weights[0, k, y, x] * d0[0, :, ny, nx]
    torch.testing.assert_close(got, expected)


def test_neighbor_weighting_with_one_hot_mask_copies_that_neighbour():
    d0 = torch.randn(1, 2, 5, 6)
    logits = torch.full((1, 9, 5, 6), -1e4)
    logits[:, 5] = 0  # k=5: the right-hand neighbour (dy=0, dx=+1)
    got = neighbor_offsets(d0, logits)
    assert torch.equal(got[..., :-1], d0[..., 1:])
    assert torch.equal(got[..., -1], torch.zeros_like(got[..., -1]))


def test_gradients_reach_offset_and_mask_convs():
    srm = SRM(6, 8, mode="neighbor", mask_input="guide", sample_from="upsampled").train()
    g, f = torch.randn(2, 8, 8, 16), torch.randn(2, 6, 16, 32)
    srm(g, f).square().mean().backward()
    # at initialisation the zero last conv makes the offsets zero: only that conv receives gradient
    assert srm.offset.weight.grad.abs().sum() > 0
    assert srm.offset_hidden.weight.grad.abs().sum() == 0
    assert srm.mask.weight.grad.abs().sum() == 0
    # after one optimiser step the offsets are non-zero and every offset/mask conv learns
    torch.optim.SGD(srm.parameters(), lr=1.0).step()
    srm.zero_grad()
    srm(g, f).square().mean().backward()
    for conv in (srm.offset, srm.offset_hidden, srm.mask):
        assert conv.weight.grad.abs().sum() > 0


def test_modes_have_the_parts_they_name():
    assert not hasattr(make_srm("pixel"), "mask") and hasattr(make_srm("pixel"), "offset")
    assert not hasattr(make_srm("bilinear"), "offset")
    with pytest.raises(ValueError, match="'sideways'"):
        SRM(4, 4, mode="sideways", mask_input="guide", sample_from="upsampled")


def reference_offsets(srm, u, f_lat):
    """SRM's offsets exactly as its definition writes them: convolutions over cat[u, f']."""
    guide = torch.cat([u, f_lat], 1)
    hidden = F.relu(srm.offset_bn(srm.offset_hidden(guide)))
    if srm.mode == "pixel":
        return srm.offset(hidden)
    mask_logits = srm.mask(guide if srm.mask_input == "guide" else hidden)
    return neighbor_offsets(srm.offset(hidden), mask_logits)


@pytest.mark.parametrize("mode,mask_input", [("neighbor", "guide"), ("neighbor", "hidden"), ("pixel", "guide")])
@pytest.mark.parametrize("train", [False, True])
def test_offsets_equal_the_definition_over_the_concatenation(mode, mask_input, train):
    srm = SRM(6, 8, mode=mode, mask_input=mask_input, sample_from="upsampled").train(train)
    torch.nn.init.normal_(srm.offset.weight, std=0.5)
    g, f = torch.randn(2, 8, 9, 13), torch.randn(2, 6, 17, 25)
    out, offsets = srm(g, f, return_offsets=True)
    f_lat = srm.lateral(f)
    u = upsample_bilinear(g, f_lat)
    expected = reference_offsets(srm, u, f_lat)
    assert expected.abs().mean() > 0.05  # offsets far from zero, so the comparison means something
    torch.testing.assert_close(offsets, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out, srm.out(warp(u, expected) + f_lat), rtol=1e-4, atol=1e-4)


def test_mask_from_hidden_uses_the_hidden_map():
    srm = make_srm("neighbor")
    cheap = SRM(6, 8, mode="neighbor", mask_input="hidden", sample_from="upsampled")
    assert srm.mask.in_channels == 16 and cheap.mask.in_channels == 4
    with pytest.raises(ValueError, match="'offsets'"):
        SRM(6, 8, mask_input="offsets", sample_from="upsampled", mode="neighbor")


def test_srm_grid_is_float32_and_exact_under_bf16():
    u = torch.randn(1, 4, 8, 2048)
    xs, ys = base_grid(u.bfloat16())
    assert xs.dtype == torch.float32 and torch.equal(xs.flatten(), torch.arange(2048) + 0.5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = warp(u, torch.zeros(1, 2, 8, 2048))
    assert out.dtype == torch.float32 and torch.equal(out, u)  # zero offsets: the input, bit for bit
    half = u.bfloat16()
    assert torch.equal(warp(half, torch.zeros(1, 2, 8, 2048)), half)  # a .bfloat16() model too


@pytest.mark.parametrize("coarse,fine", [((8, 16), (16, 32)), ((9, 12), (17, 23)), ((32, 64), (64, 128))])
def test_sampling_the_coarse_map_with_zero_offsets_is_bilinear_upsampling(coarse, fine):
    """sample_from="coarse": warp(g, 0) over the fine grid equals bilinear upsampling of g (float32 rounding of
    the normalised coordinates only), so a fresh SRM in that mode is still an FPN step."""
    g = torch.randn(2, 5, *coarse)
    got = warp(g, torch.zeros(2, 2, *fine))
    torch.testing.assert_close(got, F.interpolate(g, size=fine, mode="bilinear", align_corners=False),
                               rtol=0, atol=1e-4)


def test_sampling_the_coarse_map_lands_where_the_offsets_say():
    """Against an independent construction: fine pixel x + dx sits at coarse coordinate (x + 0.5 + dx) * Wc / Wf - 0.5
    (pixel indices), sampled with align_corners=True normalisation and border clamping."""
    torch.manual_seed(0)
    g = torch.randn(1, 3, 7, 10)
    hf, wf = 13, 19
    off = 3 * torch.randn(1, 2, hf, wf)
    ys, xs = torch.meshgrid(torch.arange(hf, dtype=torch.float32), torch.arange(wf, dtype=torch.float32),
                            indexing="ij")
    cx = (xs + 0.5 + off[0, 0]) * 10 / wf - 0.5
    cy = (ys + 0.5 + off[0, 1]) * 7 / hf - 0.5
    grid = torch.stack([2 * cx / 9 - 1, 2 * cy / 6 - 1], dim=-1)[None]
    expected = F.grid_sample(g, grid, mode="bilinear", padding_mode="border", align_corners=True)
    torch.testing.assert_close(warp(g, off), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("mode,mask_input", [("neighbor", "guide"), ("neighbor", "hidden"), ("pixel", "guide")])
def test_sample_from_coarse_keeps_the_offsets_and_samples_g(mode, mask_input):
    torch.manual_seed(0)
    ref = SRM(6, 8, mode=mode, mask_input=mask_input, sample_from="upsampled").eval()
    for p in ref.parameters():
        torch.nn.init.normal_(p, std=0.3)
    srm = SRM(6, 8, mode=mode, mask_input=mask_input, sample_from="coarse").eval()
    srm.load_state_dict(ref.state_dict())
    g, f = torch.randn(2, 8, 8, 16), torch.randn(2, 6, 16, 32)
    with torch.no_grad():
        out, offsets = srm(g, f, return_offsets=True)
        _, ref_offsets = ref(g, f, return_offsets=True)
        f_lat = srm.lateral(f)
        expected = srm.out(warp(g, offsets) + f_lat)
    assert torch.count_nonzero(offsets) > 0
    torch.testing.assert_close(offsets, ref_offsets)  # same offsets whether u is passed in or built inside
    torch.testing.assert_close(out, expected)
    with pytest.raises(ValueError, match="sample_from"):
        SRM(6, 8, sample_from="fine", mask_input="guide", mode="neighbor")


@pytest.mark.parametrize("batch,src,out", [(1, (5, 7), (10, 14)), (2, (8, 6), (19, 11)), (1, (1, 4), (3, 3))])
def test_gather_sample_is_grid_sample(batch, src, out):
    """Border padding, align_corners=False, grids reaching past every edge, odd and one-pixel sizes."""
    g = torch.Generator().manual_seed(batch)
    x = torch.randn(batch, 3, *src, generator=g)
    grid = torch.rand(batch, *out, 2, generator=g) * 2.6 - 1.3
    ref = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    torch.testing.assert_close(gather_sample(x, grid), ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("mode,mask_input", [("neighbor", "hidden"), ("neighbor", "guide"), ("pixel", "hidden")])
def test_offset_range_bounds_the_offsets_and_keeps_a_fresh_srm_bilinear(mode, mask_input):
    torch.manual_seed(0)
    srm = SRM(6, 8, mode=mode, mask_input=mask_input, sample_from="coarse", offset_range=1.5).eval()
    g, f = torch.randn(2, 8, 8, 16), torch.randn(2, 6, 16, 32)
    _, offsets = srm(g, f, return_offsets=True)
    assert torch.count_nonzero(offsets) == 0  # zero-initialised: still exactly bilinear
    torch.nn.init.normal_(srm.offset.weight, std=5.0)  # raw offsets of tens of pixels
    unbounded = SRM(6, 8, mode=mode, mask_input=mask_input, sample_from="coarse").eval()
    unbounded.load_state_dict(srm.state_dict())
    raw = unbounded(g, f, return_offsets=True)[1]
    bounded = srm(g, f, return_offsets=True)[1]
    # the neighbour weighting is a softmax-weighted mean of bounded offsets: within the bound up to float32 rounding
    # (1.5 + 1 ulp was seen on an AVX2 CPU)
    assert raw.abs().max() > 5 and bounded.abs().max() <= 1.5 * (1 + 1e-6)
    if mode == "pixel":  # no neighbour weighting: exactly range * tanh(raw / range)
        torch.testing.assert_close(bounded, 1.5 * torch.tanh(raw / 1.5))
    bounded.sum().backward()
    assert srm.offset.weight.grad.abs().sum() > 0


def test_offset_range_is_a_checked_config_option():
    import scrnet

    model = scrnet.create_model("scrnet_r18", srm={"offset_range": 2})
    assert all(srm.offset_range == 2.0 for srm in model.decoder.refine)
    assert scrnet.create_model("scrnet_r18").decoder.refine[0].offset_range is None  # the default: unbounded
    with pytest.raises(ValueError, match="model.srm.offset_range must be null or a positive number"):
        scrnet.create_model("scrnet_r18", srm={"offset_range": 0})


def test_guided_gate_blends_resampled_and_bilinear_maps():
    torch.manual_seed(0)
    srm = SRM(6, 8, mode="neighbor", mask_input="hidden", sample_from="coarse", gate="guided").eval()
    g, f = torch.randn(2, 8, 8, 16), torch.randn(2, 6, 16, 32)
    f_lat = srm.lateral(f)
    bilinear = srm.out(upsample_bilinear(g, f_lat) + f_lat)
    torch.testing.assert_close(srm(g, f), bilinear, rtol=0, atol=1e-5)  # zero offsets: bilinear, whatever the gate
    torch.nn.init.normal_(srm.offset.weight, std=0.5)
    plain = SRM(6, 8, mode="neighbor", mask_input="hidden", sample_from="coarse").eval()
    plain.load_state_dict(srm.state_dict(), strict=False)
    u = upsample_bilinear(g, f_lat)
    offsets = plain.offsets(g, None, f_lat)
    resampled = warp(g, offsets)
    # the gate starts at 0.5: halfway between the resampled and the bilinear map
    torch.testing.assert_close(srm(g, f), srm.out(u + 0.5 * (resampled - u) + f_lat), rtol=1e-5, atol=1e-5)
    srm.gate.bias.data.fill_(-30.0)  # gate shut: plain bilinear upsampling again
    torch.testing.assert_close(srm(g, f), bilinear, rtol=0, atol=1e-5)
    srm.gate.bias.data.fill_(0.0)
    srm.train()
    srm(g, f).sum().backward()
    assert srm.gate.weight.grad.abs().sum() > 0
    assert any(p is srm.gate.weight for p in srm.offset_parameters())


def test_gate_is_a_checked_config_option():
    import scrnet

    assert scrnet.create_model("scrnet_r18", srm={"gate": "guided"}).decoder.refine[0].gate_kind == "guided"
    assert not hasattr(scrnet.create_model("scrnet_r18").decoder.refine[0], "gate")  # the default: no gate
    with pytest.raises(ValueError, match="model.srm.gate must be one of"):
        scrnet.create_model("scrnet_r18", srm={"gate": "soft"})
