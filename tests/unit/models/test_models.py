"""Every named variant goes through the same checks (forward, backward, modes, save/load, bad input)."""


import pytest
import torch

import scrnet
from scrnet import create_model
from scrnet.models import SegmentationOutput, apply_overrides, model_config

PARAMS = {
    "scrnet_r18": (13561365, 14011854),
    "scrnet_r50": (34765721, 36551378),
    "scrnet_r101": (53757849, 55543506),
    "scrnet_van_b1": (14109073, 14174362),
    "scrnet_effl0": (4061880, 4316817),
    "fpn_r18": (13713363, 14163852),
    "sfnet_r18": (13766361, 14216850),
}


ODD = (97, 131)


def test_zoo_lists_every_variant():
    assert scrnet.list_models() == list(PARAMS)


@pytest.mark.parametrize("name", list(PARAMS))
def test_parameter_counts_are_stable(name):
    model = scrnet.create_model(name)
    assert (model.num_params(), model.num_params(include_aux=True)) == PARAMS[name]


@pytest.mark.parametrize("name", list(PARAMS))
def test_forward_and_backward_at_an_odd_size(name):
    model = scrnet.create_model(name, num_classes=5)
    x = torch.randn(2, 3, *ODD)
    out = model.train()(x)
    assert isinstance(out, SegmentationOutput) and out.out.shape == (2, 5, *ODD) and out.offsets is None
    assert len(out.aux) == 3 and all(a.shape == (2, 5, *ODD) for a in out.aux)
    (out.out.logsumexp(1).mean() + sum(a.logsumexp(1).mean() for a in out.aux)).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
    with torch.no_grad():
        logits = model.eval()(x[:1])
    assert isinstance(logits, torch.Tensor) and logits.shape == (1, 5, *ODD)


def test_eval_mode_treats_batch_elements_independently():
    # padding and cropping work per image: an image scored in a batch of two equals it scored alone
    model = scrnet.create_model("scrnet_r18", num_classes=3).eval()
    x = torch.randn(2, 3, 45, 70)
    with torch.no_grad():
        torch.testing.assert_close(model(x)[1:], model(x[1:]), rtol=1e-4, atol=1e-4)


def test_deep_supervision_off_gives_no_aux_heads():
    model = scrnet.create_model("scrnet_r18", deep_supervision=False).train()
    assert model.decoder.aux_heads is None
    assert model(torch.randn(2, 3, 64, 64)).aux == []


def test_offsets_are_returned_on_request():
    model = scrnet.create_model("scrnet_r18").eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 96), return_offsets=True)
    assert [tuple(o.shape) for o in out.offsets] == [(1, 2, 4, 6), (1, 2, 8, 12), (1, 2, 16, 24)]
    assert out.out.shape == (1, 19, 64, 96) and out.aux == []


def test_state_dict_round_trip(tmp_path):
    model = scrnet.create_model("sfnet_r18", num_classes=4).eval()
    torch.nn.init.normal_(model.decoder.refine[2].offset.weight, std=0.1)
    torch.save(model.state_dict(), tmp_path / "m.pth")
    other = scrnet.create_model("sfnet_r18", num_classes=4).eval()
    other.load_state_dict(torch.load(tmp_path / "m.pth", weights_only=True))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), other(x))


@pytest.mark.parametrize("bad,message", [
    (torch.randn(3, 64, 64), r"4-D tensor B x 3 x H x W.*got \(3, 64, 64\)"),
    (torch.randn(1, 1, 64, 64), r"4-D tensor B x 3 x H x W.*got \(1, 1, 64, 64\)"),
    (torch.randn(1, 4, 64, 64), r"got \(1, 4, 64, 64\)"),
])
def test_bad_input_names_what_was_given_and_expected(bad, message):
    model = scrnet.create_model("fpn_r18").eval()
    with pytest.raises(ValueError, match=message):
        model(bad)


def test_unknown_model_names_it_and_the_choices():
    with pytest.raises(ValueError, match=r"unknown model 'scrnet_r34'; expected one of \['scrnet_r18'"):
        scrnet.create_model("scrnet_r34")


def test_every_switch_is_a_config_key():
    cfg = model_config("scrnet_r18", ["model.srm.mode=pixel", "context.type=crm", "context.attention=danet",
                                      "context.stages=last", "channels=64", "deep_stem=true"])
    assert (cfg.srm.mode, cfg.context.type, cfg.context.attention, cfg.context.stages, cfg.channels,
            cfg.deep_stem) == ("pixel", "crm", "danet", "last", 64, True)
    assert model_config("scrnet_r18", ["context.type=ppm", "context.ppm_bins=[1,3]"]).context.ppm_bins == [1, 3]
    model = scrnet.build_model(cfg)
    assert model.decoder.refine[0].mode == "pixel" and isinstance(model.backbone.conv1, torch.nn.Sequential)
    assert apply_overrides(cfg, {"srm": {"mode": "bilinear"}}).srm.mode == "bilinear"


def test_reduce1x1_head_fusion_is_a_1x1_reduction_then_the_3x3_at_a_third_of_the_macs():
    from scrnet.profiling.flops import count_macs

    base = model_config("scrnet_effl0", ["channels=32"])
    light = apply_overrides(base, ["fusion=reduce1x1"])
    model = scrnet.build_model(light)
    first, second = model.decoder.fuse
    assert (first[0].in_channels, first[0].out_channels, first[0].kernel_size) == (128, 32, (1, 1))
    assert (second[0].in_channels, second[0].out_channels, second[0].kernel_size) == (32, 32, (3, 3))
    assert isinstance(scrnet.build_model(base).decoder.fuse[0], torch.nn.Conv2d)  # conv3x3: one ConvBNReLU
    fuse_macs = {}
    for cfg in (base, light):
        with torch.device("meta"):
            counted = scrnet.build_model(cfg).eval()
        fuse_macs[cfg.fusion] = count_macs(counted, (128, 256))[2]["SCRNet.decoder.fuse"]
    assert fuse_macs["reduce1x1"] / fuse_macs["conv3x3"] == pytest.approx(13 / 36, rel=1e-6)  # 4C^2 + 9C^2 : 36C^2
    out = model.train()(torch.randn(2, 3, 64, 96))
    out.out.sum().backward()
    assert out.out.shape == (2, light.num_classes, 64, 96) and first[0].weight.grad is not None


@pytest.mark.parametrize("override,message", [
    (["fusion=sum"], r"model.fusion must be one of \['conv3x3', 'reduce1x1'\], got 'sum'"),
    (["srm.mode=diagonal"],
     r"model.srm.mode must be one of \['neighbor', 'pixel', 'bilinear', 'dysample', 'carafe'\], got 'diagonal'"),
    (["context.type=aspp"], r"model.context.type must be one of .* got 'aspp'"),
    (["srm.sample_from=fine"], r"model.srm.sample_from must be one of \['upsampled', 'coarse'\], got 'fine'"),
    (["backbone=resnet34"], r"model.backbone must be one of .* got 'resnet34'"),
    (["channels=abc"], r"model.channels.*'abc'"),
    (["channels=-8"], r"model.channels must be a positive number, got -8"),
    (["srm.typo=1"], r"model.srm.typo.*not in 'SRMConfig'"),
    (["pad_to=48"], r"model.pad_to must be a multiple of 32"),
    (["channels"], r"'channels' is not of the form key=value"),
])
def test_bad_config_values_fail_with_one_line_naming_the_key(override, message):
    with pytest.raises(ValueError, match=message) as info:
        model_config("scrnet_r18", override)
    assert "\n" not in str(info.value)


def test_yaml_model_section(tmp_path):
    from scrnet.config import load_model_config

    path = tmp_path / "run.yaml"
    path.write_text("model:\n  name: scrnet_van_b1\n  num_classes: 7\n  srm:\n    mode: pixel\n")
    cfg = load_model_config(str(path), ["channels=32"])
    assert (cfg.name, cfg.num_classes, cfg.srm.mode, cfg.channels) == ("scrnet_van_b1", 7, "pixel", 32)
    (tmp_path / "bad.yaml").write_text("train: {}\n")
    with pytest.raises(ValueError, match="bad.yaml: expected a 'model' section"):
        load_model_config(str(tmp_path / "bad.yaml"))
    # read as scrnet train reads it: a format-1 file (model.aux_weight, since moved to train.loss) is upgraded
    old = tmp_path / "old.yaml"
    old.write_text("model:\n  name: scrnet_r18\n  num_classes: 5\n  aux_weight: 0.2\n")
    with pytest.warns(FutureWarning, match="model.aux_weight is now train.loss.aux_weight"):
        assert load_model_config(str(old)).num_classes == 5


def test_fresh_scrnet_under_bf16_autocast_stays_close_to_float32():
    torch.manual_seed(0)
    model = create_model("scrnet_r18", num_classes=5, channels=32).eval()
    x = torch.randn(1, 3, 64, 512)
    with torch.no_grad():
        ref = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = model(x)
    assert torch.isfinite(got).all() and (got.float() - ref).abs().max() <= 0.1 * ref.abs().max()


def test_van_keeps_channels_last():
    model = create_model("scrnet_van_b1", num_classes=5, channels=32).eval().to(memory_format=torch.channels_last)
    x = torch.randn(1, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        feats = model.backbone(x)
        assert all(f.is_contiguous(memory_format=torch.channels_last) for f in feats)
        plain = model.backbone(torch.randn(1, 3, 64, 64))
    assert all(f.is_contiguous() for f in plain)


@pytest.mark.parametrize("name, override, message", [
    ("scrnet_r18", ["srm.mode=carafe", "srm.gate=guided"],
     r"model.srm.gate='guided' does not apply to model.srm.mode=carafe \(it takes model.srm.carafe_kernel, "
     r"model.srm.carafe_encoder_kernel, model.srm.carafe_channels\)"),
    ("scrnet_r18", ["srm.mode=bilinear", "srm.offset_range=2"],
     r"model.srm.offset_range=2.0 does not apply to model.srm.mode=bilinear \(it takes no other options\)"),
    ("sfnet_r18", ["srm.mask_input=guide"], r"model.srm.mask_input='guide' does not apply to model.srm.mode=pixel"),
    ("scrnet_r18", ["srm.dysample_groups=8"], r"model.srm.dysample_groups=8 does not apply to model.srm.mode=neighbor"),
    ("fpn_r18", ["context.attention=danet"], r"model.context.attention='danet' does not apply to "
                                            r"model.context.type=ppm \(it takes model.context.ppm_bins\)"),
])
def test_an_option_the_chosen_mode_does_not_use_is_refused(name, override, message):
    """Regression: options the chosen SRM mode ignores were accepted silently (srm.mode=carafe with srm.gate=guided
    built no gate), so two identical networks became two compare groups."""
    with pytest.raises(ValueError, match=message) as info:
        model_config(name, override)
    assert "\n" not in str(info.value)


def test_a_stored_config_with_an_option_its_mode_never_used_still_loads():
    """Configs stored before such options were refused (checkpoints, eval JSONs of older formats hold the old
    defaults, e.g. mask_input 'guide' for a pixel-mode network or attention 'danet' for PPM) load as the network
    they computed: the unused options take their defaults."""
    from scrnet.config import Config, config_from_dict, config_to_dict

    stored = config_to_dict(Config(model=model_config("sfnet_r18")))
    stored["model"]["srm"].update(mask_input="guide", gate="guided", carafe_kernel=7)
    stored["model"]["context"].update(attention="danet", qk_ratio=4)
    cfg = config_from_dict(stored, origin="test")
    assert cfg.model == model_config("sfnet_r18", ["srm.gate=guided"])
