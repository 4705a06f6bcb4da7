
import pytest
import torch
import torch.nn.functional as F

from scrnet.models.crm import CRM, PPM, ChannelAttention, NoContext, PositionAttention

CHANNELS = (8, 16, 24, 32)


STRIDES = (4, 8, 16, 32)


def features(b=2, h=4, w=6, dtype=torch.float32):
    return [torch.randn(b, c, h * 8 // (2 ** i), w * 8 // (2 ** i), dtype=dtype) for i, c in enumerate(CHANNELS)]


@pytest.mark.parametrize("attention", ["danet", "cbam"])
@pytest.mark.parametrize("stages", ["all", "last"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_output_shape_and_dtype(attention, stages, dtype):
    crm = CRM(CHANNELS, STRIDES, 16, attention=attention, stages=stages).eval().to(dtype)
    out = crm(features(dtype=dtype))
    assert out.shape == (2, 16, 4, 6) and out.dtype == dtype


@pytest.mark.parametrize("attention", ["danet", "cbam"])
def test_with_zero_scales_crm_is_its_residual_path(attention):
    crm = CRM(CHANNELS, STRIDES, 16, attention=attention, stages="all").eval()
    feats = features()
    pooled = [F.avg_pool2d(f, 2 ** (3 - i)) if i < 3 else f for i, f in enumerate(feats)]
    expected = crm.project(crm.reduce(torch.cat(pooled, 1)))
    assert torch.equal(crm(feats), expected)
    for m in crm.attention:  # non-zero scales must change the output, or the check above proves nothing
        m.gamma.data.fill_(0.5)
    assert not torch.allclose(crm(feats), expected)


def test_stages_last_uses_only_the_last_stage():
    crm = CRM(CHANNELS, STRIDES, 16, stages="last", attention="danet").eval()
    feats = features()
    out = crm(feats)
    feats[0] = torch.randn_like(feats[0])
    assert torch.equal(crm(feats), out)
    assert crm.project[0].in_channels == CHANNELS[-1]


def test_reduction_only_above_threshold():
    kept = CRM(CHANNELS, STRIDES, 16, reduce_threshold=80, attention="danet", stages="all")
    assert isinstance(kept.reduce, torch.nn.Identity)  # 80 channels
    crm = CRM(CHANNELS, STRIDES, 16, reduce_threshold=79, reduce_channels=40, attention="danet", stages="all")
    assert crm.reduce[0].in_channels == 80 and crm.reduce[0].out_channels == 40
    assert crm(features()).shape == (2, 16, 4, 6)


def test_channel_attention_matches_definition():
    x = torch.randn(2, 5, 3, 4)
    ca = ChannelAttention()
    ca.gamma.data.fill_(0.7)
    flat = x.reshape(2, 5, 12)
    energy = flat @ flat.transpose(1, 2)
    attn = torch.softmax(energy.max(-1, keepdim=True).values - energy, -1)
    torch.testing.assert_close(ca(x), x + 0.7 * (attn @ flat).reshape_as(x))


def test_position_attention_matches_definition():
    x = torch.randn(2, 16, 3, 4)
    pa = PositionAttention(16, qk_ratio=8)
    pa.gamma.data.fill_(0.3)
    q = pa.query(x).flatten(2)
    k = pa.key(x).flatten(2)
    v = pa.value(x).flatten(2)
    attn = torch.softmax(q.transpose(1, 2) @ k, -1)  # N x N, rows = query positions
    torch.testing.assert_close(pa(x), x + 0.3 * (v @ attn.transpose(1, 2)).reshape_as(x))
    assert pa.query.out_channels == 2


def test_alternative_contexts():
    feats = features()
    assert PPM(32, 16).eval()(feats).shape == (2, 16, 4, 6)
    assert NoContext(32, 16).eval()(feats).shape == (2, 16, 4, 6)


def test_bad_choices_name_the_value():
    with pytest.raises(ValueError, match="'se'"):
        CRM(CHANNELS, STRIDES, 16, attention="se", stages="all")
    with pytest.raises(ValueError, match="'first'"):
        CRM(CHANNELS, STRIDES, 16, stages="first", attention="danet")


def test_crm_channel_attention_does_not_overflow_in_fp16():
    # the reproduction at 64 channels instead of 960 (same overflow: the energy's diagonal sums over the
    # 2048 positions, 2048 * 68 * E[relu(z)^2] ~ 7e4 > float16's 65504), fast enough for the default suite
    torch.manual_seed(0)
    x = (68 ** 0.5) * torch.relu(torch.randn(1, 64, 32, 64))
    module = ChannelAttention()
    with torch.no_grad():
        ref = module(x)
        with torch.autocast("cpu", dtype=torch.float16):
            out = module(x)
    assert torch.isfinite(out).all()
    assert (out.float() - ref).abs().max() <= 1e-2 * ref.abs().max()  # gamma = 0: the residual, in fp16
    module.gamma.data.fill_(0.5)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.float16):
        assert torch.isfinite(module(x)).all()
