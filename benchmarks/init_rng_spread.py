"""Paired-difference spread of two arms with and without shared initial weights (``train.init_rng``), on the same
seeds: the per-seed differences of mIoU (and of Boundary IoU where both arms have eval JSONs), their mean and sd, and
each arm's own seed sd. An exploratory measurement of variance, not a comparison: no verdict is drawn.

    python benchmarks/init_rng_spread.py \\
        --shared  BASE_DIR_OR_RECIPE_JSON NEIGHBOR_DIR \\
        --per-module BILINEAR_DIR NEIGHBOR_DIR [--json OUT]

Each DIR holds ``seedS/eval.json`` cells (a ``scrnet study`` variant folder). The shared-stream baseline may instead
be ``docs/ablations/recipe_bilinear.json`` (its 1000-iteration recipe's per-seed mIoU; no Boundary IoU there).
"""

import argparse
import json
import statistics
from pathlib import Path


def per_seed(source: str) -> dict[int, dict[str, float]]:
    """{seed: {"miou": points, "boundary_iou": points}} of a variant folder, or of the recipe evidence file."""
    path = Path(source)
    if path.is_file():
        seeds = json.loads(path.read_text())["recipes"]["iters1000"]["seeds"]
        return {s["seed"]: {"miou": s["miou"]} for s in seeds}
    out = {}
    for cell in sorted(path.glob("seed*/eval.json")):
        record = json.loads(cell.read_text())
        seed = record["config"]["train"]["seed"]
        out[seed] = {"miou": 100 * record["miou"], "boundary_iou": 100 * record["boundary_iou"]["mean"]}
    return out


def spread(base: dict, arm: dict) -> dict:
    seeds = sorted(set(base) & set(arm))
    out = {"seeds": seeds}
    for metric in ("miou", "boundary_iou"):
        if not all(metric in base[s] and metric in arm[s] for s in seeds):
            continue
        diffs = [round(arm[s][metric] - base[s][metric], 2) for s in seeds]
        out[metric] = {"differences": diffs, "mean": round(statistics.mean(diffs), 2),
                       "paired_sd": round(statistics.stdev(diffs), 2),
                       "baseline_sd": round(statistics.stdev(base[s][metric] for s in seeds), 2),
                       "arm_sd": round(statistics.stdev(arm[s][metric] for s in seeds), 2)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", nargs=2, metavar=("BASE", "ARM"), required=True)
    parser.add_argument("--per-module", nargs=2, metavar=("BASE", "ARM"), required=True)
    parser.add_argument("--json", metavar="OUT")
    args = parser.parse_args()
    result = {"label": "exploratory: spread of paired differences with and without shared initial weights (no "
                       "comparison is decided here)",
              "shared_stream": spread(*map(per_seed, args.shared)),
              "per_module": spread(*map(per_seed, args.per_module))}
    for name in ("shared_stream", "per_module"):
        r = result[name]
        for metric in ("miou", "boundary_iou"):
            if metric in r:
                m = r[metric]
                print(f"{name:13s} {metric:12s} seeds {r['seeds']}: differences {m['differences']}, mean "
                      f"{m['mean']:+.2f}, paired sd {m['paired_sd']:.2f} (baseline sd {m['baseline_sd']:.2f}, "
                      f"arm sd {m['arm_sd']:.2f})")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
