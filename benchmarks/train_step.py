"""Training throughput of the Cityscapes recipe: images/s and peak memory per model and setting, with the data
loader's images/s at the same crop, in one run.

    python benchmarks/train_step.py [--models scrnet_r18 scrnet_van_b1 scrnet_effl0 fpn_r18]
        [--settings fp32 bf16 bf16-cl bf16-cl-compile] [--crop 1024 1024] [--batch 8] [--iters 10]
        [--device cuda] [--loader-workers 4] [--image-size 1024 2048] [--json OUT] [--profile DIR]

Each model trains with its Cityscapes config (configs/cityscapes/MODEL.yaml: OHEM, deep supervision, SGD with the
poly schedule), on synthetic street scenes written as a Cityscapes tree to a temporary folder (the real loader, label
mapping and transforms), through the real
``Trainer.step`` (forward, loss, backward, the non-finite check, optimizer step) on one batch already on the device
(what the GPU can do); the data loader is timed separately on the same data (what the input pipeline can feed).
Settings, each measured against eager float32 (``fp32``) of the same model in the same run:

- ``bf16``: ``train.amp=bf16`` (autocast to bfloat16);
- ``bf16-cl``: and ``train.channels_last=true``;
- ``bf16-cl-compile``: and ``train.compile=default`` (``torch.compile`` of the network; the first steps compile);
- ``fp32-acc2``, ``fp32-acc4``, ``bf16-acc4``: the same batch as 2 or 4 micro-batches (``train.accumulate``), for
  the memory the recipe's batch needs on a smaller card.

Every (model, setting) runs in a process of its own (forked on the CPU, spawned on CUDA), so that its peak memory
is its own (CUDA: max allocated; CPU: peak resident set size above the process's size when the configuration
starts). On CUDA the run also reports how busy the GPU was during the timed steps (kernel time / wall time, from
``torch.profiler``) and how many host synchronisations one step makes (``torch.cuda.set_sync_debug_mode``).
``--profile DIR`` writes one Chrome trace per configuration.
"""

import argparse
import json
import multiprocessing as mp
import resource
import tempfile
import time
import warnings
from pathlib import Path

import torch
from common import write_cityscapes_tree

SETTINGS = {"fp32": ["train.amp=none"],
            "bf16": ["train.amp=bf16"],
            "bf16-cl": ["train.amp=bf16", "train.channels_last=true"],
            "bf16-cl-compile": ["train.amp=bf16", "train.channels_last=true", "train.compile=default"],
            "fp32-acc2": ["train.amp=none", "train.accumulate=2"],
            "fp32-acc4": ["train.amp=none", "train.accumulate=4"],
            "bf16-acc4": ["train.amp=bf16", "train.accumulate=4"]}
MODELS = ("scrnet_r18", "scrnet_van_b1", "scrnet_effl0", "fpn_r18")
CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "cityscapes"


def recipe(spec: dict, data_root: str, work_dir: str):
    from scrnet.config import load_config

    h, w = spec["image_size"]
    return load_config(str(CONFIGS / f"{spec['model']}.yaml"), [
        f"data.root={data_root}", f"data.train.scale=[{w},{h}]", "model.backbone_weights=null",  # no download
        f"data.train.crop_size=[{spec['crop'][0]},{spec['crop'][1]}]", f"train.batch_size={spec['batch']}",
        f"train.device={spec['device']}", "train.tensorboard=false", f"train.num_workers={spec['loader_workers']}",
        # the recipe's floor (800000 per batch of 16: 50000 per image); at most a 16th of the pixels at tiny sizes
        f"train.loss.ohem_min_kept={spec['batch'] * min(50000, spec['crop'][0] * spec['crop'][1] // 16)}",
        *SETTINGS[spec["setting"]]])


def resident_mb() -> float:
    """This process's resident set size now (Linux), in MB."""
    import os

    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure(spec: dict, data_root: str, queue) -> None:
    from scrnet.engine.trainer import Trainer

    at_start = resident_mb() if spec["device"] == "cpu" else 0.0
    with tempfile.TemporaryDirectory() as work_dir:
        trainer = Trainer(recipe(spec, data_root, work_dir), work_dir, progress=False)
        loader = iter(trainer.loader())
        batch = next(loader)
        batch = {k: v.to(trainer.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        device = trainer.device
        sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
        for _ in range(spec["warmup"]):
            trainer.step(batch)
        sync()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        start = time.perf_counter()
        for _ in range(spec["iters"]):
            trainer.step(batch)
        sync()
        elapsed = time.perf_counter() - start
        peak = (torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda"
                else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - at_start)
        result = {**spec, "images_per_s": spec["batch"] * spec["iters"] / elapsed, "peak_mem_mb": peak}
        if device.type == "cuda":
            result.update(gpu_activity(trainer, batch, spec))
        queue.put(result)


def gpu_activity(trainer, batch: dict, spec: dict) -> dict:
    """Kernel time / wall time over ``spec["iters"]`` profiled steps, and host synchronisations in one step."""
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        start = time.perf_counter()
        for _ in range(spec["iters"]):
            trainer.step(batch)
        torch.cuda.synchronize()
        wall = time.perf_counter() - start
    kernel_us = sum(e.self_device_time_total for e in prof.key_averages())
    if spec.get("profile"):
        Path(spec["profile"]).mkdir(parents=True, exist_ok=True)
        prof.export_chrome_trace(str(Path(spec["profile"]) / f"{spec['model']}_{spec['setting']}.json"))
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            trainer.step(batch)
            torch.cuda.current_stream().query()
    finally:
        torch.cuda.set_sync_debug_mode(previous)
    syncs = [str(w.message).splitlines()[0] for w in caught if "synchroniz" in str(w.message)]
    return {"gpu_busy": kernel_us / 1e6 / wall, "syncs_per_step": len(syncs), "sync_sources": sorted(set(syncs))}


def result_of(proc, queue, name: str) -> dict:
    """The measuring process's result; a clear error if it died first (its traceback is above)."""
    import queue as queues

    while True:
        try:
            result = queue.get(timeout=1.0)
            proc.join()
            return result
        except queues.Empty:
            if not proc.is_alive():
                raise SystemExit(f"{name}: the measuring process failed (exit code {proc.exitcode})")


def loader_rate(spec: dict, data_root: str, batches: int) -> float:
    """Images per second that the training DataLoader (``loader_workers`` processes) delivers in its steady state:
    the batches its workers prepared while starting (up to ``workers x prefetch_factor``, plus the first) are drained
    untimed, then ``batches`` more are timed from the arrival of the first of them to the arrival of the last."""
    from scrnet.engine.trainer import Trainer

    with tempfile.TemporaryDirectory() as work_dir:
        trainer = Trainer(recipe({**spec, "device": "cpu", "setting": "fp32"}, data_root, work_dir), work_dir,
                          progress=False)
        data = trainer.loader()
        loader = iter(data)
        warmup = max(data.num_workers, 1) * (data.prefetch_factor or 1) + 1
        for _ in range(warmup):
            next(loader)
        arrivals = [time.perf_counter()]
        for _ in range(batches):
            next(loader)
            arrivals.append(time.perf_counter())
        return spec["batch"] * batches / (arrivals[-1] - arrivals[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--settings", nargs="+", default=None, choices=list(SETTINGS),
                        help="default: all on CUDA; fp32 and bf16 on the CPU (compile takes minutes there)")
    parser.add_argument("--crop", nargs=2, type=int, default=[1024, 1024], metavar=("H", "W"))
    parser.add_argument("--batch", type=int, default=8, help="images per step (per GPU)")
    parser.add_argument("--iters", type=int, default=10, help="timed steps")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (compile happens here)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--loader-workers", type=int, default=4, help="DataLoader processes (0: skip the loader)")
    parser.add_argument("--loader-batches", type=int, default=20,
                        help="batches timed after the workers' start-up prefetch is drained")
    parser.add_argument("--image-size", nargs=2, type=int, default=[1024, 2048], metavar=("H", "W"),
                        help="synthetic images written (Cityscapes: 1024 2048)")
    parser.add_argument("--images", type=int, default=16, help="synthetic training images written")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--profile", help="write a Chrome trace per configuration into this folder (CUDA)")
    args = parser.parse_args()
    settings = args.settings or (list(SETTINGS) if args.device.startswith("cuda") else ["fp32", "bf16"])
    if "fp32" not in settings:
        settings = ["fp32", *settings]  # the baseline of every ratio
    with tempfile.TemporaryDirectory() as data_root:
        write_cityscapes_tree(Path(data_root), args.images, "train", tuple(args.image_size))
        write_cityscapes_tree(Path(data_root), 1, "val", tuple(args.image_size))
        base = {"device": args.device, "crop": args.crop, "batch": args.batch, "iters": args.iters,
                "warmup": args.warmup, "image_size": args.image_size, "loader_workers": args.loader_workers,
                "profile": args.profile}
        # CUDA needs fresh processes; on the CPU a fork saves each configuration the interpreter's start-up
        ctx = mp.get_context("spawn" if args.device.startswith("cuda") else "fork")
        results = []
        for model in args.models:
            for setting in settings:
                queue = ctx.Queue()
                proc = ctx.Process(target=measure, args=({**base, "model": model, "setting": setting}, data_root,
                                                         queue))
                proc.start()
                results.append(result_of(proc, queue, f"{model} {setting}"))
        loader = (loader_rate({**base, "model": args.models[0]}, data_root, args.loader_batches)
                  if args.loader_workers else None)
    device = (f"{torch.cuda.get_device_name()}, driver/CUDA {torch.version.cuda}" if args.device.startswith("cuda")
              else f"CPU, {torch.get_num_threads()} threads")
    print(f"training step, Cityscapes recipe, batch {args.batch}, crop {args.crop[0]}x{args.crop[1]}, {device}, "
          f"torch {torch.__version__}")
    cuda = args.device.startswith("cuda")
    print(f"{'model':<15}{'setting':<17}{'img/s':>8}{'peak MB':>9}{'vs fp32':>9}{'mem vs fp32':>12}"
          + (f"{'GPU busy':>10}{'syncs':>7}" if cuda else ""))
    for r in results:
        ref = next(x for x in results if x["model"] == r["model"] and x["setting"] == "fp32")
        line = (f"{r['model']:<15}{r['setting']:<17}{r['images_per_s']:>8.2f}{r['peak_mem_mb']:>9.0f}"
                f"{r['images_per_s'] / ref['images_per_s']:>8.2f}x{r['peak_mem_mb'] / ref['peak_mem_mb']:>11.2f}x")
        if cuda:
            line += f"{r['gpu_busy']:>9.0%}{r['syncs_per_step']:>7}"
        print(line)
    if loader is not None:
        print(f"data loader, {args.loader_workers} workers, {args.image_size[0]}x{args.image_size[1]} PNGs -> "
              f"{args.crop[0]}x{args.crop[1]} crops: {loader:.1f} img/s")
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "loader_images_per_s": loader}, indent=2) + "\n")


if __name__ == "__main__":
    main()
