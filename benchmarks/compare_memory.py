"""Peak memory of ``scrnet compare`` on a 150-class study (ADE20K's size): 2 arms x 5 seeds of 2000 images, per-image
counts in the file format of ``--format`` (1: N x K x K confusion matrices; 2: per-class counts, the current one).

    python benchmarks/compare_memory.py [--format 2] [--images 2000] [--classes 150] [--seeds 5]

The files are written with NumPy in either format (so that an older scrnet, which reads only format 1, can be
measured with the same script: ``PYTHONPATH=OLD/src python benchmarks/compare_memory.py --format 1``); loading the
runs and comparing them happens in a child process, whose peak resident set size above its size at start is the
figure (Linux ``ru_maxrss``).
"""

import argparse
import json
import multiprocessing as mp
import resource
import tempfile
from pathlib import Path

import numpy as np


def resident_mb() -> float:
    import os

    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def write_runs(root: Path, fmt: int, images: int, classes: int, seeds: int) -> list[Path]:
    from scrnet.config import config_to_dict, load_config

    rng = np.random.default_rng(0)
    names = [f"c{c}" for c in range(classes)]
    paths = []
    for arm, overrides in (("bilinear", ["model.srm.mode=bilinear"]), ("neighbor", [])):
        for seed in range(seeds):
            gt = rng.integers(0, 2000, (images, classes))
            tp = (gt * rng.uniform(0.6, 0.95, (images, classes))).astype(np.int64)
            wrong = gt - tp  # predicted as the next class
            pred = tp + np.roll(wrong, 1, axis=1)
            arrays = {"images": np.array([f"img{i:05d}.png" for i in range(images)]),
                      "biou_inter": tp // 4, "biou_union": (gt + pred - tp) // 4}
            if fmt == 1:
                confusion = np.zeros((images, classes, classes), np.int64)
                idx = np.arange(classes)
                confusion[:, idx, idx] = tp
                confusion[:, idx, (idx + 1) % classes] = wrong
                arrays["confusion"] = confusion
            else:
                arrays.update(format=np.array(2), tp=tp, gt=gt, pred=pred)
            path = root / arm / f"seed{seed}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(path.with_suffix(".npz"), **arrays)
            cfg = config_to_dict(load_config(None, ["model.name=scrnet_effl0", f"model.num_classes={classes}",
                                                    f"train.seed={seed}", *overrides]))
            path.write_text(json.dumps({"miou": 0.5, "mbiou": 0.5, "class_names": names, "num_images": images,
                                        "iou": dict.fromkeys(names, 0.5), "biou": dict.fromkeys(names, 0.5),
                                        "dataset": "folder", "split": "val", "config": cfg,
                                        "per_image_counts": path.with_suffix(".npz").name}))
            paths.append(path)
    return paths


def measure(paths: list[str], queue) -> None:
    try:
        from scrnet.experiments.compare import compare, load_run

        start = resident_mb()
        result = compare([load_run(p) for p in paths])
        queue.put({"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - start,
                   "comparisons": len(result["comparisons"])})
    except BaseException:  # the parent waits on the queue: hand it the failure
        import traceback

        queue.put({"error": traceback.format_exc()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--format", type=int, choices=(1, 2), default=2)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--classes", type=int, default=150)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        paths = [str(p) for p in write_runs(Path(root), args.format, args.images, args.classes, args.seeds)]
        ctx = mp.get_context("spawn")  # a fresh interpreter: its peak is compare's
        queue = ctx.Queue()
        proc = ctx.Process(target=measure, args=(paths, queue))
        proc.start()
        out = queue.get()
        proc.join()
    if "error" in out:
        raise SystemExit(out["error"])
    print(f"compare of 2 arms x {args.seeds} seeds, {args.images} images, {args.classes} classes, counts format "
          f"{args.format}: peak {out['peak_mb']:.0f} MB above start ({out['comparisons']} comparisons)")


if __name__ == "__main__":
    main()
