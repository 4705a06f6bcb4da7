"""Named variants: one small function each, returning the variant's full :class:`ModelConfig`.

Every switch a variant sets is a config key, so any variant (and any ablation) is also reachable from YAML.
"""

from collections.abc import Callable

from ..errors import ConfigError
from ..overrides import apply_overrides as override
from .config import ContextConfig, ModelConfig, SRMConfig
from .scrnet import SCRNet, build_model


def scrnet_r18() -> ModelConfig:
    """SCRNet with ResNet-18: neighbour-guided SRM, CRM, decoder width 128."""
    return ModelConfig(name="scrnet_r18", backbone="resnet18", channels=128)


def scrnet_r50() -> ModelConfig:
    """SCRNet with ResNet-50, decoder width 256."""
    return ModelConfig(name="scrnet_r50", backbone="resnet50", channels=256)


def scrnet_r101() -> ModelConfig:
    """SCRNet with ResNet-101, decoder width 256."""
    return ModelConfig(name="scrnet_r101", backbone="resnet101", channels=256)


def scrnet_van_b1() -> ModelConfig:
    """The lightweight variant: VAN-B1, decoder width 48, chosen so that the network lands under the paper's
    137.9 GFLOPs at 1024x2048 by our count (``scrnet models``; docs/reconstruction.md explains the choice)."""
    return ModelConfig(name="scrnet_van_b1", backbone="van_b1", channels=48)


def scrnet_effl0() -> ModelConfig:
    """CPU-friendly SCRNet with EfficientNet-Lite0, whose ImageNet weights ship with the package; width 96."""
    return ModelConfig(name="scrnet_effl0", backbone="efficientnet_lite0", channels=96)


def fpn_r18() -> ModelConfig:
    """Baseline: bilinear top-down path (plain FPN) with PPM context, ResNet-18, width 128."""
    return ModelConfig(name="fpn_r18", backbone="resnet18", channels=128, srm=SRMConfig(mode="bilinear"),
                       context=ContextConfig(type="ppm"))


def sfnet_r18() -> ModelConfig:
    """Baseline: per-pixel offsets without neighbour guidance (SFNet-like) with PPM context, ResNet-18."""
    return ModelConfig(name="sfnet_r18", backbone="resnet18", channels=128, srm=SRMConfig(mode="pixel"),
                       context=ContextConfig(type="ppm"))


ZOO: dict[str, Callable[[], ModelConfig]] = {
    f.__name__: f for f in (scrnet_r18, scrnet_r50, scrnet_r101, scrnet_van_b1, scrnet_effl0, fpn_r18, sfnet_r18)
}


def list_models() -> list[str]:
    return list(ZOO)


def apply_overrides(cfg: ModelConfig, overrides: dict | list[str] | None) -> ModelConfig:
    """``cfg`` with ``overrides`` applied: a nested dict, or dotted ``key=value`` strings (``srm.mode=pixel``; a
    leading ``model.`` is accepted). Unknown keys, wrong types and bad choices raise one line naming them."""
    if isinstance(overrides, list):
        overrides = [o.removeprefix("model.") for o in overrides]
    return override(cfg, overrides, key_prefix="model.")


def model_config(name: str, overrides: dict | list[str] | None = None) -> ModelConfig:
    """The config of zoo variant ``name`` with ``overrides`` applied (see :func:`apply_overrides`)."""
    if name not in ZOO:
        raise ConfigError(f"unknown model {name!r}; expected one of {list_models()}")
    return apply_overrides(ZOO[name](), overrides)


def create_model(name: str, num_classes: int = 19, backbone_weights: str | None = None,
                 **overrides) -> SCRNet:
    """Build zoo variant ``name`` with ``num_classes`` outputs; ``backbone_weights`` is None, "imagenet" or a path.

    Extra keyword arguments override config keys, e.g. ``create_model("scrnet_r18", srm={"mode": "pixel"})``.
    """
    cfg = model_config(name, {"num_classes": num_classes, "backbone_weights": backbone_weights, **overrides})
    return build_model(cfg)
