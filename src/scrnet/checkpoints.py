"""Loading a trained model back: ``scrnet.load_checkpoint(path)``."""

from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

from ._version import __version__
from .config import Config, config_from_dict, config_to_dict
from .engine.checkpoint import atomic_save, load
from .models import SCRNet, build_model


class LoadedCheckpoint(NamedTuple):
    model: SCRNet  # in eval mode, with .class_names and .palette set
    config: Config
    class_names: list[str]


def load_checkpoint(path: str | Path, device: str = "cpu") -> LoadedCheckpoint:
    """A ready model (eval mode) plus its resolved config and class names; loading never runs code."""
    state = load(path)
    missing = [k for k in ("model", "config", "class_names") if k not in state]
    if missing:
        raise ValueError(f"{path} is not an SCRNet checkpoint: no {', '.join(missing)}")
    try:
        cfg = config_from_dict(state["config"])
    except Exception as exc:  # written by another scrnet version, or edited
        raise ValueError(f"{path}: its config does not fit this scrnet version: {str(exc).splitlines()[0]}") from None
    model = build_model(replace(cfg.model, backbone_weights=None))
    model.load_state_dict(state["model"])
    model.class_names = list(state["class_names"])
    model.palette = [tuple(c) for c in state.get("palette", [])]
    return LoadedCheckpoint(model.to(device).eval(), cfg, list(state["class_names"]))


def inference_state(model: SCRNet, config: Config, class_names: list[str],
                    palette: list[tuple[int, int, int]]) -> dict:
    """The part of a checkpoint that inference needs: weights, resolved config, classes, palette, normalisation.
    Fills ``config.data.mean/std`` from the backbone where they are unset."""
    norm = model.normalization
    config.data.mean = config.data.mean or list(norm.mean)
    config.data.std = config.data.std or list(norm.std)
    return {"model": model.state_dict(), "config": config_to_dict(config), "class_names": list(class_names),
            "palette": [list(c) for c in palette],
            "normalization": {"mean": list(config.data.mean), "std": list(config.data.std)},
            "scrnet_version": __version__}


def save_checkpoint(model: SCRNet, path: str | Path, class_names: list[str], palette: list[tuple[int, int, int]],
                    config: Config | None = None) -> Path:
    """Write an inference checkpoint (weights, config, classes, palette) for a model built in Python."""
    if len(class_names) != model.cfg.num_classes:
        raise ValueError(f"{len(class_names)} class names for a model with {model.cfg.num_classes} classes")
    path = Path(path)
    atomic_save(inference_state(model, config or Config(model=model.cfg), class_names, palette), path)
    return path
