"""Checkpoints: written atomically, loadable with ``torch.load(weights_only=True)`` (loading never runs code).

A checkpoint is a dict of plain containers and tensors: ``model`` (state dict), ``config`` (the resolved config as
plain data), ``class_names``, ``palette``, ``normalization``, and for exact resume ``optimizer``, ``scheduler``,
``scaler``, ``iteration``, ``rng`` (Python, NumPy and torch generator states) and ``best``. Periodic checkpoints
are ``iter_XXXXXXXX.pth``; the last ``keep_last`` are kept, plus ``best.pth``.
"""

import os
import random
import re
import tempfile
from pathlib import Path

import numpy as np
import torch

PATTERN = re.compile(r"iter_(\d+)\.pth$")


def atomic_save(obj: dict, path: Path) -> None:
    """Write to a temporary file in the same folder, flush it to disk, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (the directory entry itself is flushed); no-op where unsupported."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def rng_state() -> dict:
    np_state = np.random.get_state()
    version, keys, gauss = random.getstate()
    state = {"python": {"version": version, "keys": list(keys), "gauss": gauss},
             "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                       "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def own_cuda_rng_state(device: torch.device) -> torch.Tensor | None:
    """The CUDA generator state of this process's own GPU (None on the CPU)."""
    return torch.cuda.get_rng_state(device) if device.type == "cuda" else None


def set_rng_state(state: dict, rank: int = 0, device: torch.device | None = None) -> None:
    """Restore the generators of :func:`rng_state`. With ``cuda_per_rank`` (one state per rank, written by a
    multi-GPU run), this rank's own GPU gets its own rank's state, so dropout and drop-path draws continue exactly
    on every GPU."""
    python = state["python"]
    random.setstate((python["version"], tuple(python["keys"]), python["gauss"]))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    per_rank = state.get("cuda_per_rank")
    own = per_rank[rank] if per_rank and rank < len(per_rank) else None
    if own is not None and device is not None and device.type == "cuda":
        torch.cuda.set_rng_state(own, device)
    elif "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_path(work_dir: Path, iteration: int) -> Path:
    return work_dir / "checkpoints" / f"iter_{iteration:08d}.pth"


def list_checkpoints(work_dir: Path) -> list[tuple[int, Path]]:
    folder = work_dir / "checkpoints"
    found = [(int(m.group(1)), p) for p in folder.glob("iter_*.pth") if (m := PATTERN.search(p.name))]
    return sorted(found)


def latest_checkpoint(work_dir: Path) -> Path | None:
    found = list_checkpoints(work_dir)
    return found[-1][1] if found else None


def prune(work_dir: Path, keep_last: int) -> None:
    for _, path in list_checkpoints(work_dir)[:-keep_last]:
        path.unlink(missing_ok=True)


def load(path: str | Path) -> dict:
    """Load a checkpoint safely (``weights_only=True``); errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"cannot load checkpoint {path}: {str(exc).splitlines()[0]}") from None
