"""Latency measurement: several models timed interleaved in one run, so they share the machine's state."""

import os
import statistics
import time
from collections.abc import Callable, Sequence

import torch

from ..errors import ConfigError, ScrnetError
from ..runtime import configure_cuda, preserved_backend_settings


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


def _build(name: str, device: str, channels_last: bool, fuse: bool = True, split_dilation: bool = False):
    """A zoo model (19 classes, random weights: latency does not depend on them) or a trained model from a
    checkpoint, a published folder or an hf:// id; ``split_dilation`` computes VAN's dilated depth-wise convs on
    input phases (the same function; see ``scrnet.models.backbones.van.split_dilated_convs``)."""
    from ..models import create_model, list_models

    if name in list_models():
        model = create_model(name, num_classes=19).eval()
    else:
        from ..pretrained import from_pretrained

        model = from_pretrained(name).model.eval()
    if fuse:
        model.fuse()
    if split_dilation:
        from ..models.backbones.van import split_dilated_convs

        split_dilated_convs(model)
    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def _peak_rss_child(name: str, runtime: str, size, batch: int, fuse: bool, queue) -> None:
    import resource

    fn = _runner(name, runtime, size, batch, "cpu", "float32", False, False, fuse)
    for _ in range(2):
        fn()
    queue.put(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def cpu_peak_rss_mb(name: str, runtime: str, size, batch: int, fuse: bool = True) -> float:
    """Peak resident memory of a process that builds the model and runs it twice (its own process, so the figure
    is the model's alone), in eager float32 (or onnxruntime) whatever --dtype/--compile say."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_peak_rss_child, args=(name, runtime, tuple(size), batch, fuse, queue))
    proc.start()
    value = queue.get()
    proc.join()
    return value


class ProviderUnavailable(ScrnetError, RuntimeError):
    """onnxruntime cannot run on the requested device here (provider missing, or it fell back to another)."""

    usage = True


class Runner:
    """One forward pass of a model on a fixed random batch, as a no-argument callable; ``model`` is the torch
    module (None for onnxruntime) and ``provider`` the onnxruntime execution provider actually in use."""

    def __init__(self, fn, model=None, provider: str | None = None):
        self.fn, self.model, self.provider = fn, model, provider
        self.graph_rel_diff: float | None = None  # CUDA graph replay against eager, when captured

    def __call__(self):
        return self.fn()


COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
PRECISIONS = ("autocast", "cast")


def compiled(model, mode: str):
    """``torch.compile`` as the benchmark uses it: one graph per model (``fullgraph``: a graph break raises instead
    of timing a network that runs partly eagerly) and static shapes (the input size is fixed); Dynamo's recompile
    limit is raised so that several models compiled in one process do not push each other out of its cache."""
    config = torch._dynamo.config
    for key in ("recompile_limit", "cache_size_limit"):
        if hasattr(config, key):
            setattr(config, key, max(getattr(config, key), 64))
    return torch.compile(model, mode=mode, fullgraph=True, dynamic=False)


def cuda_graphed(fn: Callable[[], torch.Tensor]) -> tuple[Callable[[], torch.Tensor], float]:
    """``fn`` (a forward pass on a fixed input) captured once in a CUDA graph and replayed: the kernels run without
    Python or launch overhead, as in a TensorRT-style deployment. Warmed up on a side stream first (cuDNN autotuning,
    lazy initialisation), as capture requires. Returns the replaying callable and the largest difference between the
    replayed and the eager output, relative to the eager output's largest magnitude."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    reference = fn().float().clone()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_out = fn()

    def replay():
        graph.replay()
        return static_out

    diff = ((replay().float() - reference).abs().max() / reference.abs().max().clamp_min(1e-12)).item()
    return replay, diff


def _runner(name: str, runtime: str, size, batch: int, device: str, dtype: str, channels_last: bool,
            compile_mode: str | None, fuse: bool = True, precision: str = "autocast",
            cuda_graph: bool = False, split_dilation: bool = False) -> Runner:
    """A no-argument callable running one forward pass of model ``name`` on a fixed random batch: the eval-mode
    network (auxiliary heads off) including the final upsampling to the input size.

    ``precision="autocast"`` runs the float32 model under autocast to ``dtype``; ``"cast"`` converts the weights and
    the input to ``dtype`` (``model.half()``), as float16 deployments do; SRM's sampling grid and CRM's affinities
    stay float32 either way."""
    model = _build(name, device, channels_last and runtime == "torch", fuse, split_dilation)
    x = torch.randn(batch, 3, *size, device=device)
    if runtime == "onnxruntime":
        import tempfile

        return onnxruntime_runner(model, x, tempfile.mkdtemp(prefix="scrnet_bench_"), device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    cast = precision == "cast" and dtype != "float32"
    if cast:
        model, x = model.to(DTYPES[dtype]), x.to(DTYPES[dtype])
    module = model
    if compile_mode:
        model = compiled(model, compile_mode)
    amp = torch.autocast(device, dtype=DTYPES[dtype], enabled=dtype != "float32" and not cast)

    def fn():
        with torch.inference_mode(), amp:
            return model(x)

    runner = Runner(fn, module)
    if cuda_graph:
        runner.fn, runner.graph_rel_diff = cuda_graphed(fn)
    return runner


def onnxruntime_options(threads: int):
    """Session options for timing onnxruntime: ``threads`` intra-op threads, and their spin-waiting off.

    With spinning on (onnxruntime's default), the worker threads of the session that has just run keep spinning
    while the next session runs, so sessions timed in turn in one process slow each other down, and a ratio
    between two graphs (INT8 against float32) comes out understated (docs/deployment.md has the figures). A single
    deployed session may spin; timings with spinning off are then slightly pessimistic."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def onnxruntime_runner(model: torch.nn.Module, x: torch.Tensor, folder: str | os.PathLike, device: str = "cpu",
                       sampler: str = "gather") -> Runner:
    """``model`` exported as ``scrnet export`` does (into ``folder``, at ``x``'s size) and run on ``x`` in an
    onnxruntime session with as many threads as torch (:func:`onnxruntime_options`), on ``device``'s execution
    provider. Raises :class:`ProviderUnavailable` if that provider is missing, or onnxruntime falls back to
    another."""
    import onnxruntime as ort

    from ..deploy.export import export_onnx

    path = export_onnx(model.cpu(), os.path.join(folder, f"model{id(model)}.onnx"), size=tuple(x.shape[-2:]),
                       sampler=sampler)
    options = onnxruntime_options(torch.get_num_threads())
    wanted = "CUDAExecutionProvider" if device == "cuda" else "CPUExecutionProvider"
    if wanted not in ort.get_available_providers():
        raise ProviderUnavailable(f"onnxruntime {ort.__version__} has no {wanted} here (available: "
                                  f"{ort.get_available_providers()}); install onnxruntime-gpu for --device cuda")
    session = ort.InferenceSession(str(path), options, providers=[wanted])
    used = session.get_providers()[0]
    if used != wanted:  # onnxruntime falls back to the CPU silently when the CUDA provider fails to load
        raise ProviderUnavailable(f"onnxruntime fell back to {used} instead of {wanted}")
    feed = {"image": x.cpu().numpy()}
    return Runner(lambda: session.run(["logits"], feed), None, used)


def cuda_peak_mb(runner: Runner) -> float:
    """Peak CUDA memory of one call of ``runner``: its model's weights plus what the call allocates beyond what
    was already allocated (other models' weights and inputs excluded)."""
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    runner()
    torch.cuda.synchronize()
    weights = sum(t.numel() * t.element_size() for t in
                  [*runner.model.parameters(), *runner.model.buffers()]) if runner.model is not None else 0
    return (torch.cuda.max_memory_allocated() - base + weights) / 2**20


def versions() -> dict:
    """Device, driver, CUDA, cuDNN, torch and onnxruntime versions, printed with every table."""
    out = {"torch": torch.__version__}
    try:
        import onnxruntime

        out["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        out["onnxruntime"] = None
    if torch.cuda.is_available():
        out["cuda"] = torch.version.cuda
        out["cudnn"] = torch.backends.cudnn.version()
        out["device_name"] = torch.cuda.get_device_name()
        try:
            import subprocess

            out["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                           capture_output=True, text=True, timeout=10).stdout.strip() or None
        except (OSError, subprocess.SubprocessError):
            out["driver"] = None
    return out


def check_request(specs: list[tuple[str, str]], size=(512, 1024), batch: int = 1, device: str = "cpu",
                  compile_mode: str | None = None, precision: str = "autocast", cuda_graph: bool = False) -> None:
    """The one validator of a benchmark request (what :func:`benchmark` checks first): every model a zoo name, a
    checkpoint, a published folder or ``hf://`` id that loads (an ONNX graph is refused: its checkpoint is exported
    and timed with runtime onnxruntime), a positive size and batch, a known precision and compile mode, CUDA when
    asked for, a CUDA graph only on CUDA and not with torch.compile. Raises :class:`ConfigError` in one line."""
    from ..models import list_models
    from ..pretrained import from_pretrained, is_model_source

    names = [name for name, _ in specs]
    onnx = [m for m in names if m.lower().endswith(".onnx")]
    if onnx:
        raise ConfigError(f"{onnx[0]}: benchmark the checkpoint it came from with runtime onnxruntime (the graph is "
                          f"exported and timed the same way)")
    unknown = [m for m in names if m not in list_models() and not is_model_source(m)]
    if unknown:
        raise ConfigError(f"unknown model {unknown[0]!r}; expected one of {list_models()}, a checkpoint, a published "
                          f"model folder or hf://ORG/NAME")
    for m in dict.fromkeys(names):
        if m not in list_models():
            from_pretrained(m)  # fail here, in one line, rather than inside a timing run
    if min(size) < 1 or batch < 1:
        raise ConfigError(f"size and batch must be positive, got size {size[0]} {size[1]}, batch {batch}")
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if compile_mode is not None and compile_mode not in COMPILE_MODES:
        raise ConfigError(f"compile mode must be one of {COMPILE_MODES}, got {compile_mode!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device cuda: no CUDA device is available")
    if cuda_graph and device != "cuda":
        raise ConfigError("a CUDA graph (--cuda-graph) needs device cuda")
    if cuda_graph and compile_mode:
        raise ConfigError("a CUDA graph and torch.compile exclude each other here: compile mode reduce-overhead "
                          "captures CUDA graphs itself")


def benchmark(specs: list[tuple[str, str]], size=(512, 1024), batch: int = 1, device: str = "cpu",
              dtype: str = "float32", channels_last: bool = False, compile_mode: str | None = None,
              warmup: int | None = None, rounds: int | None = None, min_time_s: float | None = None,
              measure_memory: bool = True, fuse: bool = True, precision: str = "autocast",
              cuda_graph: bool = False, split_dilation: bool = False) -> dict:
    """Latency of each ``(model, runtime)`` spec, timed interleaved in one run; ratios are to the first spec.

    Defaults follow real-time segmentation papers on CUDA: 10 warm-up calls, then at least 100 timed calls and at
    least 5 s, ``torch.cuda.synchronize()`` around each call, cuDNN autotuning and TF32 on (see
    :func:`scrnet.runtime.configure_cuda`); on the CPU 3 warm-up calls and 10 timed calls. BatchNorm is folded into
    the convolutions (``fuse``) unless asked otherwise. ``compile_mode`` is a ``torch.compile`` mode (see
    :func:`compiled`), ``precision`` how ``dtype`` is applied (see :func:`_runner`), ``cuda_graph`` replays each
    torch model from a captured CUDA graph (see :func:`cuda_graphed`), ``split_dilation`` see :func:`_build`.
    """
    check_request(specs, size, batch, device, compile_mode, precision, cuda_graph)
    cuda = device == "cuda"
    warmup = (10 if cuda else 3) if warmup is None else warmup
    rounds = (100 if cuda else 10) if rounds is None else rounds
    min_time_s = (5.0 if cuda else 0.0) if min_time_s is None else min_time_s
    backend = None
    with preserved_backend_settings():  # the caller's cuDNN/TF32 switches are restored when timing ends
        if cuda:
            backend = configure_cuda(benchmark=True, tf32=True).describe()
        runners = [_runner(n, r, size, batch, device, dtype, channels_last, compile_mode, fuse, precision,
                           cuda_graph and r == "torch", split_dilation) for n, r in specs]
        sync = torch.cuda.synchronize if cuda else None
        peaks: list[float] = [0.0] * len(specs)
        times = time_interleaved(runners, warmup=warmup, rounds=rounds, min_time_s=min_time_s, sync=sync)
        if cuda:
            peaks = [cuda_peak_mb(r) for r in runners]
        elif measure_memory:
            peaks = [cpu_peak_rss_mb(n, r, size, batch, fuse) for n, r in specs]
    results = []
    for (name, runtime), runner, ms, peak in zip(specs, runners, times, peaks):
        s = summarize(ms)
        results.append({"model": name, "runtime": runtime, "provider": runner.provider, "ms_median": s["ms_median"],
                        "ms_p90": s["ms_p90"], "fps": 1000.0 * batch / s["ms_median"], "peak_mem_mb": peak,
                        "runs": s["runs"], "ratio_to_first": s["ms_median"] / summarize(times[0])["ms_median"],
                        "graph_vs_eager_rel_diff": runner.graph_rel_diff})
    return {"results": results,
            "conditions": {"machine": machine(), "device": device, **versions(),
                           "threads": torch.get_num_threads(), "size": list(size), "batch": batch, "dtype": dtype,
                           "channels_last": channels_last, "compile": compile_mode, "precision": precision,
                           "cuda_graph": cuda_graph, "split_dilation": split_dilation, "bn_folded": fuse,
                           "final_upsample_included": True, "warmup": warmup, "min_rounds": rounds,
                           "min_time_s": min_time_s, "backend": backend,
                           "peak_memory": "CUDA: own weights + max allocated during one call beyond what was allocated "
                                          "before it" if cuda
                           else "CPU peak RSS of an own process, eager float32 or onnxruntime"}}


def format_benchmark(report: dict) -> str:
    c = report["conditions"]
    extra = ""
    if c["device"] == "cuda":
        extra = (f", driver {c.get('driver')}, CUDA {c.get('cuda')}, cuDNN {c.get('cudnn')}, "
                 f"{c.get('backend')}")
    lines = [f"{c['machine']}, {c['device']}, torch {c['torch']}, onnxruntime {c.get('onnxruntime')}{extra}, "
             f"{c['threads']} threads, batch {c['batch']}, {c['size'][0]}x{c['size'][1]}, {c['dtype']}, "
             f"precision={c.get('precision', 'autocast')}, channels_last={c['channels_last']}, "
             f"compile={c['compile']}, cuda_graph={c.get('cuda_graph', False)}, "
             f"split_dilation={c.get('split_dilation', False)}, BN folded={c.get('bn_folded')}, "
             f"final upsample to the input size included, {c['warmup']} warm-up calls, >= {c['min_rounds']} timed "
             f"calls and >= {c['min_time_s']:g} s",
             f"{'model':<16}{'runtime':<13}{'ms median':>10}{'ms p90':>9}{'FPS':>8}{'peak MB':>9}{'ratio':>7}"]
    for r in report["results"]:
        peak = f"{r['peak_mem_mb']:>9.0f}" if r["peak_mem_mb"] else f"{'-':>9}"
        lines.append(f"{r['model']:<16}{r['runtime']:<13}{r['ms_median']:>10.1f}{r['ms_p90']:>9.1f}{r['fps']:>8.2f}"
                     f"{peak}{r['ratio_to_first']:>7.3f}")
    return "\n".join(lines)
