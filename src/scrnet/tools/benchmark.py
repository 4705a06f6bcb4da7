"""Latency measurement: several models timed interleaved in one run, so they share the machine's state."""

import os
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


# --------------------------------------------------------------------------------------------- scrnet benchmark
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
RUNTIMES = ("torch", "onnxruntime")


def machine() -> str:
    import platform

    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def _build(name: str, device: str, channels_last: bool):
    from ..models import create_model

    model = create_model(name, num_classes=19).eval().to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def _peak_rss_child(name: str, runtime: str, size, batch: int, queue) -> None:
    import resource

    fn = _runner(name, runtime, size, batch, "cpu", "float32", False, False)
    for _ in range(2):
        fn()
    queue.put(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def cpu_peak_rss_mb(name: str, runtime: str, size, batch: int) -> float:
    """Peak resident memory of a process that builds the model and runs it twice (its own process, so the figure
    is the model's alone), in eager float32 (or onnxruntime) whatever --dtype/--compile say."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_peak_rss_child, args=(name, runtime, tuple(size), batch, queue))
    proc.start()
    value = queue.get()
    proc.join()
    return value


def _runner(name: str, runtime: str, size, batch: int, device: str, dtype: str, channels_last: bool,
            compile_model: bool):
    """A no-argument function running one forward pass of model ``name`` on a fixed random batch."""
    model = _build(name, device, channels_last and runtime == "torch")
    x = torch.randn(batch, 3, *size, device=device)
    if runtime == "onnxruntime":
        import tempfile

        import onnxruntime as ort

        from .export import export_onnx

        folder = tempfile.mkdtemp(prefix="scrnet_bench_")
        path = export_onnx(model.cpu(), os.path.join(folder, f"{name}.onnx"), size=tuple(size))
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        providers = ["CUDAExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
        session = ort.InferenceSession(str(path), options, providers=providers)
        feed = {"image": x.cpu().numpy()}
        return lambda: session.run(["logits"], feed)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    if compile_model:
        model = torch.compile(model)
    amp = torch.autocast(device, dtype=DTYPES[dtype], enabled=dtype != "float32")

    def fn():
        with torch.inference_mode(), amp:
            return model(x)

    return fn


def benchmark(specs: list[tuple[str, str]], size=(512, 1024), batch: int = 1, device: str = "cpu",
              dtype: str = "float32", channels_last: bool = False, compile_model: bool = False, warmup: int = 3,
              rounds: int = 10, min_time_s: float = 0.0, measure_memory: bool = True) -> dict:
    """Latency of each ``(model, runtime)`` spec, timed interleaved in one run; ratios are to the first spec."""
    fns = [_runner(n, r, size, batch, device, dtype, channels_last, compile_model) for n, r in specs]
    sync = torch.cuda.synchronize if device == "cuda" else None
    peaks: list[float] = [0.0] * len(specs)
    if device == "cuda":  # CUDA: max allocated per spec, reset around each spec's calls
        wrapped = []
        for i, fn in enumerate(fns):
            def run(fn=fn, i=i):
                torch.cuda.reset_peak_memory_stats()
                fn()
                peaks[i] = max(peaks[i], torch.cuda.max_memory_allocated() / 2**20)
            wrapped.append(run)
        fns = wrapped
    times = time_interleaved(fns, warmup=warmup, rounds=rounds, min_time_s=min_time_s, sync=sync)
    if device == "cpu" and measure_memory:
        peaks = [cpu_peak_rss_mb(n, r, size, batch) for n, r in specs]
    results = []
    for (name, runtime), ms, peak in zip(specs, times, peaks):
        s = summarize(ms)
        results.append({"model": name, "runtime": runtime, "ms_median": s["ms_median"], "ms_p90": s["ms_p90"],
                        "fps": 1000.0 * batch / s["ms_median"], "peak_mem_mb": peak, "runs": s["runs"],
                        "ratio_to_first": s["ms_median"] / summarize(times[0])["ms_median"]})
    return {"results": results,
            "conditions": {"machine": machine(), "device": device, "torch": torch.__version__,
                           "threads": torch.get_num_threads(), "size": list(size), "batch": batch, "dtype": dtype,
                           "channels_last": channels_last, "compile": compile_model,
                           "peak_memory": "CUDA max allocated" if device == "cuda"
                           else "CPU peak RSS of an own process, eager float32 or onnxruntime"}}


def format_benchmark(report: dict) -> str:
    c = report["conditions"]
    lines = [f"{c['machine']}, {c['device']}, torch {c['torch']}, {c['threads']} threads, batch {c['batch']}, "
             f"{c['size'][0]}x{c['size'][1]}, {c['dtype']}, channels_last={c['channels_last']}, "
             f"compile={c['compile']}",
             f"{'model':<16}{'runtime':<13}{'ms median':>10}{'ms p90':>9}{'FPS':>8}{'peak MB':>9}{'ratio':>7}"]
    for r in report["results"]:
        peak = f"{r['peak_mem_mb']:>9.0f}" if r["peak_mem_mb"] else f"{'-':>9}"
        lines.append(f"{r['model']:<16}{r['runtime']:<13}{r['ms_median']:>10.1f}{r['ms_p90']:>9.1f}{r['fps']:>8.2f}"
                     f"{peak}{r['ratio_to_first']:>7.3f}")
    return "\n".join(lines)
