import json
from pathlib import Path

import pytest
import torch

from scrnet.models.backbones import BACKBONES, build_backbone, load_backbone_weights
from scrnet.models.backbones.efficientnet_lite import efficientnet_lite0, lite0_imagenet_path
from scrnet.models.backbones.resnet import resnet18, resnet50, resnet101
from scrnet.models.backbones.van import van_b0, van_b1, van_b2

REFERENCE = json.loads((Path(__file__).parents[2] / "fixtures" / "reference_keys.json").read_text())


IMAGENET_CAT_CLASSES = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat


IMAGENET_COFFEE_CLASSES = {504, 967, 968}  # coffee mug, espresso, cup


def shapes(module):
    return {k: list(v.shape) for k, v in module.state_dict().items()}


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_backbone_contract(name):
    backbone = build_backbone(name).eval()
    with torch.no_grad():
        feats = backbone(torch.randn(2, 3, 64, 96))
    assert len(feats) == 4 and len(backbone.channels) == 4 and backbone.strides == (4, 8, 16, 32)
    for f, c, s in zip(feats, backbone.channels, backbone.strides):
        assert f.shape == (2, c, 64 // s, 96 // s)


@pytest.mark.parametrize("factory", [resnet18, resnet50, resnet101])
def test_resnet_state_dict_matches_torchvision(factory):
    assert shapes(factory(num_classes=1000)) == REFERENCE[f"torchvision/{factory.__name__}"]


@pytest.mark.parametrize("factory", [resnet50, resnet101])
def test_deep_stem_resnet_matches_timm_resnet_c(factory):
    assert shapes(factory(deep_stem=True, num_classes=1000)) == REFERENCE[f"timm/{factory.__name__}c"]


def test_deep_stem_resnet18_stem_matches_timm():
    ours = {k: v for k, v in shapes(resnet18(deep_stem=True)).items() if k.startswith(("conv1", "bn1"))}
    ref = {k: v for k, v in REFERENCE["timm/resnet18d"].items() if k.startswith(("conv1", "bn1"))}
    assert ours == ref


def test_torchvision_style_checkpoint_loads_and_classifier_is_dropped(tmp_path):
    source = resnet18(num_classes=1000)
    path = tmp_path / "resnet18.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, path)
    backbone = build_backbone("resnet18", str(path))
    for k, v in backbone.state_dict().items():
        assert torch.equal(v, source.state_dict()[k])


def test_safetensors_checkpoint_loads(tmp_path):
    from safetensors.torch import save_file

    source = van_b0(num_classes=1000)
    path = tmp_path / "van_b0.safetensors"
    save_file(source.state_dict(), str(path))
    backbone = build_backbone("van_b0", str(path))
    assert torch.equal(backbone.state_dict()["block1.0.layer_scale_1"], source.state_dict()["block1.0.layer_scale_1"])


def test_checkpoint_that_does_not_fit_names_the_keys(tmp_path):
    path = tmp_path / "r50.pth"
    torch.save(resnet50().state_dict(), path)
    with pytest.raises(ValueError, match=r"r50.pth.*resnet18.*shape mismatches \['conv1.weight|layer1"):
        build_backbone("resnet18", str(path))
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        build_backbone("resnet18", str(tmp_path / "missing.pth"))
    with pytest.raises(ValueError, match="deep stem"):
        load_backbone_weights(resnet18(deep_stem=True), "resnet18", "imagenet")
    with pytest.raises(ValueError, match="unknown backbone 'resnet34'"):
        build_backbone("resnet34")


@pytest.mark.parametrize("factory,params_m", [(van_b0, 4.1), (van_b1, 13.9), (van_b2, 26.6)])
def test_van_parameter_counts_match_the_paper(factory, params_m):
    model = factory(num_classes=1000)
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 1) == params_m


def test_van_uses_the_official_parameter_names():
    keys = set(van_b1(num_classes=1000).state_dict())
    for key in ("patch_embed1.proj.weight", "patch_embed4.norm.running_var", "block1.0.layer_scale_1",
                "block3.3.attn.spatial_gating_unit.conv_spatial.weight", "block2.1.mlp.dwconv.dwconv.weight",
                "block1.0.attn.proj_1.weight", "norm4.weight", "head.weight"):
        assert key in keys


def lite0_with_imagenet():
    model = efficientnet_lite0(num_classes=1000)
    model.load_state_dict(torch.load(lite0_imagenet_path(), weights_only=True))
    return model.eval()


def test_efficientnet_lite0_reproduces_the_reference_package_logits():
    reference_lib = pytest.importorskip("efficientnet_lite_pytorch")  # in the dev extra
    reference = reference_lib.EfficientNet.from_pretrained("efficientnet-lite0", weights_path=lite0_imagenet_path())
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(lite0_with_imagenet().classify(x), reference.eval()(x), rtol=0, atol=1e-5)


@pytest.mark.parametrize("image,classes", [("chelsea", IMAGENET_CAT_CLASSES), ("coffee", IMAGENET_COFFEE_CLASSES)])
def test_efficientnet_lite0_classifies_real_photographs(image, classes):
    skimage_data = pytest.importorskip("skimage.data")  # in the dev extra
    rgb = torch.from_numpy(getattr(skimage_data, image)()).permute(2, 0, 1)[None].float() / 255
    rgb = torch.nn.functional.interpolate(rgb, size=(224, 224), mode="bilinear", antialias=True)
    model = lite0_with_imagenet()
    norm = BACKBONES["efficientnet_lite0"].normalization  # the spec is where the normalisation is declared
    x = (rgb - torch.tensor(norm.mean)[:, None, None]) / torch.tensor(norm.std)[:, None, None]
    with torch.no_grad():
        prob = model.classify(x).softmax(1)[0]
    assert int(prob.argmax()) in classes and float(prob.max()) > 0.5


def test_efficientnet_lite0_imagenet_weights_load_offline_into_the_segmentation_backbone():
    backbone = build_backbone("efficientnet_lite0", "imagenet")
    reference = torch.load(lite0_imagenet_path(), weights_only=True)
    assert torch.equal(backbone.state_dict()["_blocks.15._project_conv.weight"],
                       reference["_blocks.15._project_conv.weight"])
    assert not any(k.startswith("_fc") for k in backbone.state_dict())


@pytest.mark.parametrize("name,option,message", [
    ("scrnet_van_b1", {"deep_stem": True}, "model.deep_stem does not apply to backbone van_b1 (it takes "
                                           "model.drop_path_rate)"),
    ("scrnet_r18", {"drop_path_rate": 0.2}, "model.drop_path_rate does not apply to backbone resnet18 (it takes "
                                            "model.deep_stem)"),
    ("scrnet_effl0", {"deep_stem": True}, "model.deep_stem does not apply to backbone efficientnet_lite0 (it takes "
                                          "no options)"),
])
def test_options_that_do_not_apply_to_a_backbone_are_refused_in_one_line(name, option, message):
    from scrnet.models import model_config

    with pytest.raises(ValueError) as exc:
        model_config(name, option)
    assert str(exc.value) == message
    with pytest.raises(ValueError, match="does not take"):
        build_backbone(model_config(name).backbone, **option)


def test_van_keeps_its_stochastic_depth_default_when_unset():
    from scrnet.models import create_model

    assert create_model("scrnet_van_b1").cfg.drop_path_rate is None
    def rates(model):
        return [m.p for m in model.backbone.modules() if type(m).__name__ == "DropPath"]

    assert rates(create_model("scrnet_van_b1")) and max(rates(create_model("scrnet_van_b1"))) == pytest.approx(0.1)
    assert max(rates(create_model("scrnet_van_b1", drop_path_rate=0.3))) == pytest.approx(0.3)


@pytest.mark.parametrize("size", [(16, 32), (17, 31), (5, 7), (2, 3), (1, 1)])
def test_phase_split_dilated_conv_equals_the_dilated_conv(size):
    """VAN's 7x7 dilation-3 depth-wise conv computed on the 3 x 3 phases of its input: the same function (float32
    rounding only) at sizes that are and are not multiples of the dilation, with a bias."""
    from scrnet.models.backbones.van import LKA, dilated_depthwise_by_phases, split_dilated_convs

    torch.manual_seed(0)
    lka = LKA(6)
    torch.nn.init.normal_(lka.conv_spatial.bias)
    x = torch.randn(2, 6, *size)
    ref = lka.conv_spatial(x)
    got = dilated_depthwise_by_phases(lka.conv_spatial, x)
    assert got.shape == ref.shape
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-5)
    model = torch.nn.Sequential(lka)
    before = model(x)
    assert split_dilated_convs(model) == 1 and lka.split_dilation
    torch.testing.assert_close(model(x), before, rtol=0, atol=1e-5)
