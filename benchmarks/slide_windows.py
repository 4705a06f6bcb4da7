"""Sliding-window inference, windows one at a time against windows batched (``eval.window_batch``), in one run.

    python benchmarks/slide_windows.py [--model scrnet_r18] [--size 1024 2048] [--crop 1024 1024]
        [--stride 768 768] [--batches 1 3] [--rounds 3] [--device cpu] [--threads 2]

The network is the zoo model with random weights in eval mode (the time does not depend on the weights), the image
one random normalised batch of one; the default crop and stride are the Cityscapes recipe's (3 windows at
1024x2048). The window batches are timed interleaved, round by round, after one warm-up pass each; the report gives
each one's median seconds per image, its ratio to ``window_batch=1``, and the largest logit difference from it.
"""

import argparse
import statistics
import time

import torch

from scrnet.evaluation.inference import infer_slide, window_starts
from scrnet.models import create_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="scrnet_r18")
    p.add_argument("--size", nargs=2, type=int, default=[1024, 2048], metavar=("H", "W"))
    p.add_argument("--crop", nargs=2, type=int, default=[1024, 1024], metavar=("H", "W"))
    p.add_argument("--stride", nargs=2, type=int, default=[768, 768], metavar=("H", "W"))
    p.add_argument("--batches", nargs="+", type=int, default=[1, 3], help="window batches (the first: the baseline)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2, help="torch threads on the CPU")
    args = p.parse_args()
    if args.device == "cpu":
        torch.set_num_threads(args.threads)  # this script owns its process
    device = torch.device(args.device)
    model = create_model(args.model, num_classes=19).to(device).eval()
    image = torch.randn(1, 3, *args.size, device=device)
    h, w = args.size
    windows = len(window_starts(h, args.crop[0], args.stride[0])) * len(window_starts(w, args.crop[1], args.stride[1]))

    def run(batch: int) -> tuple[float, torch.Tensor]:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.inference_mode():
            out = infer_slide(model, image, tuple(args.size), tuple(args.crop), tuple(args.stride), 19, batch)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start, out

    reference = {b: run(b)[1] for b in args.batches}  # warm-up, and each batch's logits
    times: dict[int, list[float]] = {b: [] for b in args.batches}
    for _ in range(args.rounds):
        for b in args.batches:
            times[b].append(run(b)[0])
    base = args.batches[0]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {args.threads} threads"
    print(f"{args.model}, {h}x{w}, windows {args.crop[0]}x{args.crop[1]} every {args.stride[0]}x{args.stride[1]} "
          f"({windows} per image), float32, {name}, median of {args.rounds} rounds")
    print(f"{'window_batch':>12}{'s / image':>11}{'ratio':>8}{'max |Δ logit|':>15}")
    for b in args.batches:
        median = statistics.median(times[b])
        diff = (reference[b] - reference[base]).abs().max().item()
        print(f"{b:>12}{median:>11.3f}{median / statistics.median(times[base]):>7.2f}x{diff:>15.2e}")


if __name__ == "__main__":
    main()
