"""Loading a trained model back: ``scrnet.load_checkpoint(path)``."""

from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

from .config import Config, config_from_dict
from .engine.checkpoint import load
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
    cfg = config_from_dict(state["config"])
    model = build_model(replace(cfg.model, backbone_weights=None))
    model.load_state_dict(state["model"])
    model.class_names = list(state["class_names"])
    model.palette = [tuple(c) for c in state.get("palette", [])]
    return LoadedCheckpoint(model.to(device).eval(), cfg, list(state["class_names"]))
