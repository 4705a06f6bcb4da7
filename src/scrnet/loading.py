"""The public way in and out of a trained model: ``scrnet.load_checkpoint(path)`` and ``scrnet.save_checkpoint``.

:func:`load_checkpoint` returns a :class:`LoadedCheckpoint`: the model (eval mode) and everything needed to use it
as it was trained: the resolved config, class names, palette and the input normalisation. Every consumer (eval,
predict, export, the Python API) reads these from here; nothing is attached to the module. The file format and
its versions are :mod:`scrnet.checkpoint_io`'s.
"""

from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ._version import __version__
from .checkpoint_io import FORMAT_VERSION, CheckpointError, atomic_save, load
from .config import Config, config_from_dict, config_to_dict, normalization, resolve
from .data.transforms import Normalize
from .errors import ConfigError
from .models import SCRNet, build_model
from .overrides import first_line

__all__ = ["CheckpointError", "LoadedCheckpoint", "inference_state", "load_checkpoint", "load_weights",
           "read_checkpoint", "save_checkpoint", "weights_digest"]

AUX_PREFIX = "decoder.aux_heads."  # training-only heads: not part of the eval network, dropped by publish


@dataclass
class LoadedCheckpoint:
    """A trained model and what it was trained with."""

    model: SCRNet  # eval mode (for an ONNX file: scrnet.pretrained.OnnxModel, the same eval-mode interface)
    config: Config  # the resolved run config (data.mean/std set), upgraded to this version's format
    class_names: list[str]
    palette: list[tuple[int, int, int]]
    normalization: Normalize  # the input normalisation the model was trained with (config.data.mean/std)
    path: Path | None = None
    # iterations scrnet's trainer recorded for these weights (a training checkpoint's, or a published folder's
    # provenance); None when nothing records that scrnet trained them (e.g. save_checkpoint of a model built in
    # Python): a model card then says the training is unknown
    trained_iterations: int | None = None


def read_checkpoint(path: str | Path) -> tuple[dict, Config]:
    """A checkpoint's contents and its config, upgraded to the current format (see :mod:`scrnet.checkpoint_io`);
    :class:`CheckpointError` in one line naming the file when it is not a usable SCRNet checkpoint."""
    state = load(path)
    missing = [k for k in ("config", "class_names") if k not in state]
    if missing:
        raise CheckpointError(f"{path} is not an SCRNet checkpoint: no {', '.join(missing)}")
    try:
        cfg = config_from_dict(state["config"], origin=f"checkpoint {path}")
    except ConfigError as exc:
        raise CheckpointError(str(exc)) from None
    except Exception as exc:  # edited, or written by a scrnet that never existed
        raise CheckpointError(f"{path}: its config does not fit this scrnet version: {first_line(exc)}") \
            from None
    return state, cfg


def load_checkpoint(path: str | Path, device: str = "cpu") -> LoadedCheckpoint:
    """A ready model (eval mode) plus its resolved config, classes, palette and normalisation. Loading never runs
    code; older checkpoint formats are upgraded, newer ones refused naming both versions."""
    state, cfg = read_checkpoint(path)
    model = build_model(replace(cfg.model, backbone_weights=None))
    load_weights(model, state["model"], path)
    model.set_normalization(cfg.data.mean, cfg.data.std)
    names, palette = checked_labels(state["class_names"], state.get("palette", []), path)
    return LoadedCheckpoint(model.to(device).eval(), cfg, names, palette, normalization(cfg), Path(path),
                            recorded_iterations(state.get("iteration")))


def checked_labels(class_names, palette, origin: str | Path) -> tuple[list[str], list[tuple[int, int, int]]]:
    """A stored class list and palette, read as data: a list of strings, and an empty list or one RGB triple of
    0..255 integers per class; :class:`CheckpointError` naming ``origin`` otherwise."""
    if not isinstance(class_names, list) or not class_names or not all(isinstance(n, str) for n in class_names):
        raise CheckpointError(f"{origin}: its class names are not a list of strings")
    if not isinstance(palette, list) or (palette and len(palette) != len(class_names)) or not all(
            isinstance(c, (list, tuple)) and len(c) == 3 and all(isinstance(v, int) and not isinstance(v, bool)
                                                               and 0 <= v <= 255 for v in c) for c in palette):
        raise CheckpointError(f"{origin}: its palette is not one RGB triple of 0..255 integers per class")
    return list(class_names), [tuple(c) for c in palette]


def recorded_iterations(value) -> int | None:
    """A stored training-iteration count, read as data: an int, or None for anything else."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def load_weights(model: SCRNet, state: dict, origin: str | Path) -> None:
    """Load ``state`` into ``model`` exactly; one :class:`CheckpointError` line naming ``origin`` and the first
    tensor that is missing, unexpected or of another shape (with both shapes) when they do not fit."""
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise CheckpointError(f"{origin}: the weights are not a mapping of names to tensors")
    own = model.state_dict()
    for key, value in own.items():
        if key in state and state[key].dtype.is_floating_point != value.dtype.is_floating_point:
            raise CheckpointError(f"{origin}: the weights do not fit the config: {key} is {state[key].dtype} in the "
                                  f"file and {value.dtype} in the model")
        if key not in state:
            raise CheckpointError(f"{origin}: the weights do not fit the config: {key} missing "
                                  f"({len([k for k in own if k not in state])} missing in all)")
        if tuple(state[key].shape) != tuple(value.shape):
            raise CheckpointError(f"{origin}: the weights do not fit the config: {key} has shape "
                                  f"{tuple(state[key].shape)} in the file and {tuple(value.shape)} in the model")
    extra = [k for k in state if k not in own]
    if extra:
        raise CheckpointError(f"{origin}: the weights do not fit the config: unexpected {extra[0]} "
                              f"({len(extra)} unexpected in all)")
    model.load_state_dict(state)


def weights_digest(model: SCRNet) -> str:
    """The sha256 of the eval network's weights (auxiliary heads excluded): every tensor's name, dtype, shape and
    bytes in name order. The same for a training checkpoint, the inference checkpoint and the published folder of
    one model, whatever file holds them; what an eval JSON records so that ``publish`` can tell which weights its
    figures were measured on."""
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        if name.startswith(AUX_PREFIX):
            continue
        t = tensor.detach().cpu().contiguous().reshape(-1)  # 0-d tensors (BatchNorm counters) as 1-element
        digest.update(f"{name}|{t.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def inference_state(model: SCRNet, config: Config, class_names: list[str],
                    palette: list[tuple[int, int, int]]) -> dict:
    """The part of a checkpoint that inference needs: format version, weights, resolved config, classes, palette,
    normalisation (the config's, which :func:`scrnet.config.resolve` fills from the backbone where unset)."""
    config = resolve(config)
    return {"format_version": FORMAT_VERSION, "model": model.state_dict(), "config": config_to_dict(config),
            "class_names": list(class_names), "palette": [list(c) for c in palette],
            "normalization": {"mean": list(config.data.mean), "std": list(config.data.std)},
            "scrnet_version": __version__}


def save_checkpoint(model: SCRNet, path: str | Path, class_names: list[str], palette: list[tuple[int, int, int]],
                    config: Config | None = None) -> Path:
    """Write an inference checkpoint (weights, config, classes, palette) for a model built in Python."""
    if len(class_names) != model.cfg.num_classes:
        raise CheckpointError(f"{len(class_names)} class names for a model with {model.cfg.num_classes} classes")
    path = Path(path)
    atomic_save(inference_state(model, config or Config(model=model.cfg), class_names, palette), path)
    return path
