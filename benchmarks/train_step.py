"""Training iterations per second and peak memory of scrnet_r18 and scrnet_van_b1.

    python benchmarks/train_step.py [--crop 512 512] [--batch 2] [--iters 5] [--device cpu|cuda]

One full training step (forward with deep supervision, OHEM loss, backward, SGD step) on random data. Each
configuration runs in its own process so that peak memory is its own (CPU: peak resident set size; CUDA: max
allocated). On CUDA it also measures float16 autocast and channels_last. Ratios are to the first configuration of
the same run. On an H100 the figures to report are at --crop 1024 1024 --batch 8.
"""

import argparse
import json
import multiprocessing as mp
import resource
import time

import torch

from scrnet.config import LossConfig
from scrnet.engine.losses import SegmentationLoss, total_loss
from scrnet.models import create_model


def measure(spec: dict, queue) -> None:
    device = torch.device(spec["device"])
    model = create_model(spec["model"], num_classes=19).to(device).train()
    memory_format = torch.channels_last if spec["channels_last"] else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    crit = SegmentationLoss(LossConfig(ohem=True, ohem_min_kept=10000), 19).to(device)
    scaler = torch.amp.GradScaler(device.type, enabled=spec["amp"] == "fp16")
    x = torch.randn(spec["batch"], 3, *spec["crop"], device=device).contiguous(memory_format=memory_format)
    y = torch.randint(0, 19, (spec["batch"], *spec["crop"]), device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    autocast = torch.autocast(device.type, dtype=torch.float16, enabled=spec["amp"] == "fp16")

    def step():
        with autocast:
            loss = total_loss(crit, model(x), y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    for _ in range(2):
        step()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    sync()
    start = time.perf_counter()
    for _ in range(spec["iters"]):
        step()
    sync()
    elapsed = time.perf_counter() - start
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    queue.put({**spec, "it_per_s": spec["iters"] / elapsed, "peak_mem_mb": peak})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--crop", nargs=2, type=int, default=[512, 512])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args()
    variants = [(False, "none")] if args.device == "cpu" else [(False, "none"), (False, "fp16"), (True, "fp16")]
    specs = [{"model": m, "device": args.device, "crop": args.crop, "batch": args.batch, "iters": args.iters,
              "channels_last": cl, "amp": amp} for m in ("scrnet_r18", "scrnet_van_b1") for cl, amp in variants]
    ctx = mp.get_context("spawn")
    results = []
    for spec in specs:
        queue = ctx.Queue()
        proc = ctx.Process(target=measure, args=(spec, queue))
        proc.start()
        results.append(queue.get())
        proc.join()
    name = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"training step, batch {args.batch}, crop {args.crop[0]}x{args.crop[1]}, {name}, torch {torch.__version__}")
    print(f"{'model':<16}{'amp':>6}{'ch-last':>9}{'it/s':>9}{'peak MB':>10}{'ratio':>8}")
    for r in results:
        print(f"{r['model']:<16}{r['amp']:>6}{str(r['channels_last']):>9}{r['it_per_s']:>9.3f}"
              f"{r['peak_mem_mb']:>10.0f}{r['it_per_s'] / results[0]['it_per_s']:>8.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": results}, f, indent=2)


if __name__ == "__main__":
    main()
