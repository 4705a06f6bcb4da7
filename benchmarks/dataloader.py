"""Samples per second per worker of the Cityscapes training pipeline on synthetic 2048x1024 PNGs.

    python benchmarks/dataloader.py [--images 12] [--samples 60]

Writes a Cityscapes-layout tree of synthetic street scenes (PNG images and labelIds masks) to a temporary folder,
then loads samples in one process and one thread, as one DataLoader worker does: PNG decode + label mapping +
resize 0.5-2.0 + 1024x1024 crop (cat_max_ratio 0.75) + flip + photometric distortion + normalise. Goal: at least
20 samples/s per core. Prints the time split between decoding and transforming.
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import write_cityscapes_tree

from scrnet.data import SegmentationDataset, TrainTransform, TrainTransformConfig, open_source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=12, help="distinct images written (default 12)")
    parser.add_argument("--samples", type=int, default=60, help="samples timed (default 60)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_cityscapes_tree(root, args.images)
        mb = sum(p.stat().st_size for p in (root / "leftImg8bit").rglob("*.png")) / args.images / 2**20
        ds = SegmentationDataset(open_source("cityscapes", root, "train"), TrainTransform(TrainTransformConfig()))
        for i in range(3):
            ds[i]  # warm-up
        load_s = transform_s = 0.0
        for k in range(args.samples):
            i = k % len(ds)
            t0 = time.perf_counter()
            image, mask = ds.load(i)
            t1 = time.perf_counter()
            ds.transform(image, mask, np.random.default_rng([0, 0, k]))
            t2 = time.perf_counter()
            load_s += t1 - t0
            transform_s += t2 - t1
    total = load_s + transform_s
    print(f"Cityscapes train pipeline, 2048x1024 PNG ({mb:.1f} MB each), 1 process, 1 thread, {args.samples} samples")
    print(f"  {args.samples / total:.1f} samples/s per worker "
          f"(decode + label map {1e3 * load_s / args.samples:.1f} ms, "
          f"transforms {1e3 * transform_s / args.samples:.1f} ms per sample)")


if __name__ == "__main__":
    main()
