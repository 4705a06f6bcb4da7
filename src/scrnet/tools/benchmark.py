"""Latency measurement: several models timed interleaved in one run, so they share the machine's state."""

import statistics
import time
from collections.abc import Callable, Sequence

import torch


def time_interleaved(fns: Sequence[Callable[[], object]], warmup: int = 3, rounds: int = 20,
                     min_time_s: float = 0.0, sync: Callable[[], None] | None = None) -> list[list[float]]:
    """Run every ``fns[i]()`` once per round, in the same order, for ``rounds`` rounds (and at least
    ``min_time_s`` seconds in all) after ``warmup`` untimed rounds; returns each function's latencies in ms.

    Each function runs the same number of times; ``sync`` (e.g. ``torch.cuda.synchronize``) runs around each call.
    """
    sync = sync or (lambda: None)
    for _ in range(warmup):
        for fn in fns:
            fn()
    times: list[list[float]] = [[] for _ in fns]
    start = time.perf_counter()
    while len(times[0]) < rounds or time.perf_counter() - start < min_time_s:
        for fn, out in zip(fns, times):
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            out.append((time.perf_counter() - t0) * 1e3)
    return times


def summarize(ms: list[float]) -> dict[str, float]:
    ordered = sorted(ms)
    return {"ms_median": statistics.median(ordered), "ms_p90": ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))],
            "runs": len(ordered)}


def conditions() -> str:
    """The conditions a figure was measured under, printed next to it."""
    import platform

    return (f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
            f"{torch.get_num_threads()} threads")
