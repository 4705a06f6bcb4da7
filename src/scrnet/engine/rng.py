"""The random generators a training run saves and restores for an exact resume: Python, NumPy, torch's CPU
generator and each rank's own CUDA generator."""

import random
from contextlib import contextmanager

import numpy as np
import torch


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


@contextmanager
def preserved_rng():
    """The process's generators (Python, NumPy, torch's CPU and CUDA ones) as they were before the block: a library
    call that seeds or draws from them (training) leaves the caller's random streams where it found them."""
    saved = rng_state()
    try:
        yield
    finally:
        set_rng_state(saved)
