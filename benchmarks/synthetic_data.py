"""Speed of ``scrnet data synth``: scenes per second, as a ratio to writing the same images and masks as PNG.

    python benchmarks/synthetic_data.py [--scenes 200] [--size 256 512]

The baseline is the file I/O the generator cannot avoid: encoding and writing the same number of PNG pairs of
the same size (pre-rendered images, so no rendering). The ratio says how much the scene rendering adds on top.
The generator's goal (the README's demo budget): 200 scenes of 256x512 in under a minute on one core.
"""

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from scrnet.data.synthetic import generate_synthetic, render_scene


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=int, default=200)
    parser.add_argument("--size", nargs=2, type=int, default=[256, 512], metavar=("H", "W"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    h, w = args.size
    image, mask = render_scene(h, w, np.random.default_rng(0))
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        for i in range(args.scenes):
            cv2.imwrite(str(Path(tmp) / f"img{i}.png"), image)
            cv2.imwrite(str(Path(tmp) / f"mask{i}.png"), mask)
        io_s = time.perf_counter() - start
        start = time.perf_counter()
        generate_synthetic(Path(tmp) / "synth", num_train=args.scenes, num_val=0, size=(h, w), seed=1)
        gen_s = time.perf_counter() - start
    print(f"{args.scenes} scenes of {h}x{w}, 1 thread")
    print(f"PNG writing only (baseline): {io_s:6.2f} s  ({args.scenes / io_s:7.1f} scenes/s)")
    print(f"scrnet data synth:           {gen_s:6.2f} s  ({args.scenes / gen_s:7.1f} scenes/s), "
          f"{gen_s / io_s:.2f}x the baseline; goal: under 60 s")


if __name__ == "__main__":
    main()
