"""Every shipped config loads, names a zoo model and a data set type, and resolves every value."""

import re
from pathlib import Path

import pytest

from scrnet.config import EvalConfig, config_to_yaml, load_config
from scrnet.models import list_models

ROOT = Path(__file__).parents[2] / "configs"
VARIANTS = sorted((ROOT / "ablations").rglob("*.yaml"))  # study variants: overrides, not training configs
CONFIGS = sorted(set(ROOT.rglob("*.yaml")) - set(VARIANTS))


@pytest.mark.parametrize("path", VARIANTS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_ablation_variant_applies_to_the_synthetic_config_and_changes_what_it_names(path):
    from scrnet.experiments.study import read_variant

    base = load_config(ROOT / "synthetic" / "scrnet_effl0.yaml")
    name, overrides = read_variant(path)
    assert name == path.stem and overrides
    cfg = load_config(ROOT / "synthetic" / "scrnet_effl0.yaml", overrides)
    for item in overrides:
        key, value = item.split("=", 1)
        node = cfg
        for part in key.split("."):
            node = getattr(node, part)
        assert str(node).lower() == value.lower(), item
    assert cfg.train == base.train and cfg.data == base.data


def test_there_are_configs_for_every_model_and_data_set():
    names = {(p.parent.name, p.stem) for p in CONFIGS}
    for dataset in ("cityscapes", "bdd100k", "ade20k"):
        assert {m for d, m in names if d == dataset} == set(list_models())
    assert ("synthetic", "scrnet_effl0") in names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_config_loads(path):
    cfg = load_config(path)
    assert cfg.model.name == path.stem and cfg.data.type in ("cityscapes", "bdd100k", "ade20k", "folder")
    assert cfg.model.num_classes == {"cityscapes": 19, "bdd100k": 19, "ade20k": 150, "synthetic": 9,
                                    "synthetic_512": 9, "synthetic_study": 9}[path.parent.name]
    assert "???" not in config_to_yaml(cfg)


def test_cityscapes_recipe():
    cfg = load_config(Path(__file__).parents[2] / "configs" / "cityscapes" / "scrnet_r18.yaml")
    assert (cfg.train.batch_size, cfg.data.train.crop_size, cfg.data.train.ratio_range) == (16, [1024, 1024],
                                                                                           [0.5, 2.0])
    assert cfg.train.loss.ohem and cfg.train.optim.optimizer == "sgd" and cfg.train.optim.lr == 0.01
    ade = load_config(Path(__file__).parents[2] / "configs" / "ade20k" / "scrnet_van_b1.yaml")
    assert ade.train.optim.optimizer == "adamw" and ade.train.max_iters == 160000


def test_eval_config_checks():
    with pytest.raises(ValueError, match="eval.mode must be one of"):
        EvalConfig(mode="tiles")
    with pytest.raises(ValueError, match=r"eval.stride must be two positive sizes"):
        EvalConfig(stride=[0, 10])


@pytest.mark.parametrize("override,message", [
    ("eval.boundary.dilation_ratio=0", "eval.boundary.dilation_ratio must be in (0, 1)"),
    ("eval.boundary.f_tolerances=[]", "eval.boundary.f_tolerances must be pixel distances"),
    ("eval.boundary.distance_bands=[2,4]", "eval.boundary.distance_bands must be increasing edges starting at 0"),
    ("train.compile=reduce-overhead", "train.compile must be one of ['none', 'default', 'max-autotune-no-cudagraphs']"),
])
def test_published_boundary_settings_are_checked(override, message):
    from scrnet.config import ConfigError

    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(None, [override])


def test_street_configs_use_the_reference_cityscapes_boundary_ratio():
    root = Path(__file__).parents[2] / "configs"
    for data in ("cityscapes", "bdd100k"):
        assert load_config(root / data / "scrnet_r18.yaml").eval.boundary.dilation_ratio == 0.005
    assert load_config(root / "ade20k" / "scrnet_r18.yaml").eval.boundary.dilation_ratio == 0.02
