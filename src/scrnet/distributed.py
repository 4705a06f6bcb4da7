"""Process-group set-up for torchrun (single-process runs need nothing): NCCL on CUDA, gloo on CPU."""

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from .errors import ConfigError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # init_distributed created the process group (cleanup destroys only such a group)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device_type: str, timeout_s: float = 600.0) -> DistInfo:
    """Join the process group torchrun describes in the environment (``WORLD_SIZE`` > 1), else a single process.

    On CUDA each process takes the GPU of its ``LOCAL_RANK`` (more processes per node than visible GPUs is a
    :class:`ConfigError` in one line) and binds the NCCL group to it (``device_id``: no guessing, eager connect);
    ``timeout_s`` bounds how long a collective waits for a rank that died or hangs.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    device_id = None
    if device_type == "cuda":
        visible = torch.cuda.device_count()
        if local_rank >= visible:
            local_world = os.environ.get("LOCAL_WORLD_SIZE", "?")
            raise ConfigError(f"torchrun started {local_world} processes on this node but only {visible} CUDA "
                              f"device(s) are visible (LOCAL_RANK {local_rank}); use --nproc_per_node {visible} "
                              f"or train.device=cpu")
        torch.cuda.set_device(local_rank)
        device_id = torch.device("cuda", local_rank)
    created = not dist.is_initialized()  # a group the caller made is used as it is, and left to the caller
    if created:
        timeout = timedelta(seconds=timeout_s)
        # The group's keys go under a prefix per round of workers: after a restart (torchrun --max-restarts) the
        # store can still hold the previous round's keys (torch 2.13's c10d rendezvous shares one store across
        # rounds), and a worker that read a dead worker's address from them fails to connect or waits until the
        # timeout. The round is counted in the store itself: every worker of every round joins once, so the
        # counter gives all workers of a round the same number. TORCHELASTIC_RESTART_COUNT cannot serve: it
        # differs between agents (one whose workers were healthy restarts them without counting a restart).
        store, _, _ = next(dist.rendezvous("env://", rank, world, timeout=timeout))
        joined = store.add("scrnet/workers_joined", 1)
        store = dist.PrefixStore(f"scrnet/round_{(joined - 1) // world}", store)
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo", timeout=timeout,
                                device_id=device_id, store=store, rank=rank, world_size=world)
    return DistInfo(rank, world, local_rank, created)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def any_flags(flags: torch.Tensor, info: DistInfo) -> list[bool]:
    """Element-wise OR of a small float tensor of 0/1 flags over all ranks, read back to the host in one
    transfer: the single synchronisation point a training step needs (one all-reduce, one ``tolist``)."""
    if info.enabled:
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
    return [v > 0 for v in flags.tolist()]


def all_gather_floats(values: list[float], info: DistInfo, device: torch.device) -> list[list[float]]:
    if not info.enabled:
        return [values]
    t = torch.tensor(values, dtype=torch.float64, device=device)
    out = [torch.zeros_like(t) for _ in range(info.world_size)]
    dist.all_gather(out, t)
    return [o.tolist() for o in out]


def all_gather_objects(obj, info: DistInfo) -> list:
    """Every rank's ``obj`` (picklable), in rank order, on every rank."""
    if not info.enabled:
        return [obj]
    out = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def cleanup(info: DistInfo) -> None:
    """Destroy the process group if :func:`init_distributed` created it; a group the caller created stays."""
    if info.enabled and info.owns_group and dist.is_initialized():
        dist.destroy_process_group()
