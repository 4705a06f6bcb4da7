"""float32, INT8 and float16 ONNX graphs of trained checkpoints: onnxruntime CPU latency and mIoU, one run.

    python benchmarks/deploy_precision.py CHECKPOINT... --calib data/synthetic/train/images [--size 512 1024]

For each checkpoint: `scrnet export` at float32, `--int8 --calib DIR` and `--fp16` (BatchNorm folded), each file
scored by `scrnet eval FILE.onnx` on the checkpoint's validation split (same metric code as the checkpoint), then the
three sessions timed interleaved (batch 1, --size, onnxruntime CPU, 2 threads) with the median latency and the ratio
to float32 onnxruntime of the same checkpoint, measured in the same run.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--calib", required=True, help="calibration images for --int8")
    parser.add_argument("--calib-images", type=int, default=64)
    parser.add_argument("--size", nargs=2, type=int, default=[512, 1024], help="timing size (default 512 1024)")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", metavar="OUT")
    args = parser.parse_args()

    import onnxruntime as ort

    from scrnet.profiling.benchmark import onnxruntime_options, summarize, time_interleaved

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for ckpt in args.checkpoints:
            paths = {}
            for precision, extra in (("float32", []), ("int8", ["--int8", "--calib", args.calib, "--calib-images",
                                                                 str(args.calib_images)]), ("float16", ["--fp16"])):
                out = Path(tmp) / f"{Path(ckpt).stem}_{precision}.onnx"
                subprocess.run([sys.executable, "-m", "scrnet", "export", ckpt, "--onnx", str(out), *extra],
                               check=True, capture_output=True, text=True)
                paths[precision] = out
            scores = {}
            for precision, path in paths.items():
                js = path.with_suffix(".json")
                subprocess.run([sys.executable, "-m", "scrnet", "eval", str(path), "--json", str(js)], check=True,
                               capture_output=True, text=True)
                scores[precision] = json.loads(js.read_text())["miou"]
            options = onnxruntime_options(args.threads)  # spinning off: sessions timed in turn (see there)
            sessions = {p: ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
                        for p, path in paths.items()}
            x = np.random.default_rng(0).standard_normal((1, 3, *args.size)).astype(np.float32)
            fns = [lambda s=s: s.run(None, {"image": x}) for s in sessions.values()]
            times = time_interleaved(fns, warmup=2, rounds=args.rounds)
            ms = {p: summarize(t)["ms_median"] for p, t in zip(sessions, times)}
            for p in paths:
                rows.append({"checkpoint": ckpt, "precision": p, "ms_median": ms[p],
                             "speedup_vs_float32": ms["float32"] / ms[p], "miou": scores[p],
                             "miou_diff_points": 100 * (scores[p] - scores["float32"]),
                             "mb": paths[p].stat().st_size / 2**20})
    print(f"onnxruntime {ort.__version__} CPU, {args.threads} threads, batch 1, {args.size[0]}x{args.size[1]} for "
          f"latency; mIoU on each checkpoint's validation split")
    print(f"{'checkpoint':<48}{'precision':<10}{'ms':>8}{'speed-up':>10}{'mIoU':>8}{'diff':>8}{'MB':>7}")
    for r in rows:
        print(f"{r['checkpoint'][-47:]:<48}{r['precision']:<10}{r['ms_median']:>8.1f}{r['speedup_vs_float32']:>9.2f}x"
              f"{100 * r['miou']:>8.2f}{r['miou_diff_points']:>+8.2f}{r['mb']:>7.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
