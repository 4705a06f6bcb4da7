"""Backbones behind one contract (see ``base.Backbone``) and the loading of their pretrained weights."""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ...checkpoint_io import CheckpointError, sha256_of
from ...errors import ConfigError
from .base import Backbone, Normalization
from .efficientnet_lite import LITE_NORMALIZATION, efficientnet_lite0, lite0_imagenet_path
from .resnet import resnet18, resnet50, resnet101
from .van import van_b0, van_b1, van_b2
from .weights import IMAGENET_WEIGHTS, Weights


@dataclass(frozen=True)
class BackboneSpec:
    """What SCRNet knows about a backbone before building it: how to build it, where its ImageNet weights are,
    which keyword options it takes, and the input normalisation those weights expect (the one source of a run's
    ``data.mean``/``data.std`` when the config sets none)."""

    build: Callable[..., Backbone]
    imagenet: Weights | None  # the ImageNet weights (a URL, or a file installed with a package)
    classifier_prefixes: tuple[str, ...]  # keys of ImageNet checkpoints that the segmentation backbone drops
    options: tuple[str, ...] = ()  # keyword options of `build` that configs may set
    normalization: Normalization = Normalization()  # mean/std on 0..1 RGB that the weights were trained with


_W = IMAGENET_WEIGHTS
BACKBONES: dict[str, BackboneSpec] = {
    "resnet18": BackboneSpec(resnet18, _W["resnet18"], ("fc.",), ("deep_stem",)),
    "resnet50": BackboneSpec(resnet50, _W["resnet50"], ("fc.",), ("deep_stem",)),
    "resnet101": BackboneSpec(resnet101, _W["resnet101"], ("fc.",), ("deep_stem",)),
    "van_b0": BackboneSpec(van_b0, _W["van_b0"], ("head.",), ("drop_path_rate",)),
    "van_b1": BackboneSpec(van_b1, _W["van_b1"], ("head.",), ("drop_path_rate",)),
    "van_b2": BackboneSpec(van_b2, _W["van_b2"], ("head.",), ("drop_path_rate",)),
    "efficientnet_lite0": BackboneSpec(efficientnet_lite0, _W["efficientnet_lite0"], ("_conv_head.", "_bn1.", "_fc."),
                                       normalization=LITE_NORMALIZATION),
}


def build_backbone(name: str, weights: str | None = None, **options) -> Backbone:
    """Build backbone ``name``; ``weights`` is None, ``"imagenet"`` or a path to a state dict file. ``options``
    are the backbone's own keyword options (``BackboneSpec.options``); one it does not take is an error."""
    if name not in BACKBONES:
        raise ConfigError(f"unknown backbone {name!r}; expected one of {sorted(BACKBONES)}")
    spec = BACKBONES[name]
    foreign = sorted(set(options) - set(spec.options))
    if foreign:
        raise ConfigError(f"backbone {name} does not take {', '.join(foreign)} (it takes "
                         f"{', '.join(spec.options) or 'no options'})")
    backbone = spec.build(**options)
    if weights is not None:
        load_backbone_weights(backbone, name, weights)
    return backbone


def _read_state_dict(weights: str, name: str) -> dict[str, torch.Tensor]:
    spec = BACKBONES[name]
    if weights == "imagenet":
        known = spec.imagenet
        if known is None:
            raise ConfigError(f"no ImageNet weights are known for {name}; pass backbone_weights=PATH")
        if known.local is not None:
            weights = known.local()
            if known.sha256 and sha256_of(weights) != known.sha256:
                raise CheckpointError(f"{weights}: sha256 differs from the {known.sha256} recorded for {known.name} "
                                 "(a corrupted or replaced file; reinstall the package that ships it)")
        else:
            try:  # check_hash: the file name's hash prefix must match its sha256, as torch.hub checks
                return torch.hub.load_state_dict_from_url(known.url, map_location="cpu", weights_only=True,
                                                          check_hash=True)
            except Exception as exc:  # offline, proxy, a hash mismatch ...: say what to do instead
                raise CheckpointError(
                    f"could not download ImageNet weights for {name} from {known.url} ({exc}); "
                    "download the file elsewhere and pass its path as backbone_weights") from exc
    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(f"backbone weights file not found: {path} (backbone_weights=None|'imagenet'|PATH)")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    return torch.load(path, map_location="cpu", weights_only=True)


def load_backbone_weights(backbone: Backbone, name: str, weights: str) -> None:
    """Load an ImageNet-style state dict into ``backbone``; raises naming every key or shape that does not fit."""
    if weights == "imagenet" and isinstance(getattr(backbone, "conv1", None), torch.nn.Sequential):
        raise ConfigError(f"no ImageNet weights are known for {name} with a deep stem; pass backbone_weights=PATH "
                         "(timm's resnet50c/resnet101c state dicts fit)")
    state = _read_state_dict(weights, name)
    for wrapper in ("state_dict", "model"):
        if isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    state = {_strip_prefix(k): v for k, v in state.items()}
    drop = BACKBONES[name].classifier_prefixes
    state = {k: v for k, v in state.items() if not k.startswith(drop)}
    own = backbone.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [f"{k}: {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
                  if k in state and state[k].shape != v.shape]
    if missing or unexpected or mismatched:
        raise CheckpointError(
            f"weights {weights!r} do not fit backbone {name}: {len(missing)} missing keys {missing[:5]}, "
            f"{len(unexpected)} unexpected keys {unexpected[:5]}, {len(mismatched)} shape mismatches {mismatched[:5]}")
    backbone.load_state_dict(state)


def _strip_prefix(key: str) -> str:
    for prefix in ("module.", "backbone."):
        if key.startswith(prefix):
            key = key[len(prefix):]
    return key


__all__ = ["BACKBONES", "IMAGENET_WEIGHTS", "Backbone", "BackboneSpec", "Normalization", "Weights", "build_backbone",
           "lite0_imagenet_path", "load_backbone_weights"]
