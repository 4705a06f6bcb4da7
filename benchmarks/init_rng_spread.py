"""Paired-difference spread of two arms with and without shared initial weights (``train.init_rng``), on the same
seeds: the per-seed differences of mIoU (and of Boundary IoU where both arms have eval JSONs), their mean and sd, and
each arm's own seed sd. An exploratory measurement of variance, not a comparison: no verdict is drawn.

    python benchmarks/init_rng_spread.py \\
        --shared  BASE_DIR_OR_RECIPE_JSON NEIGHBOR_DIR \\
        --per-module BILINEAR_DIR NEIGHBOR_DIR [--seeds S ...] [--json OUT]

Either pair may be given alone (``--per-module`` only: the spread at the current default initialisation, e.g. of the
confirmatory study's arms); ``--seeds`` keeps only those seeds (e.g. the seeds of a study's first look).

Each DIR holds ``seedS/eval.json`` cells (a ``scrnet study`` variant folder). The shared-stream baseline may instead
be ``docs/ablations/recipe_bilinear.json`` (its 1000-iteration recipe's per-seed mIoU; no Boundary IoU there).
"""

import argparse
import json
import statistics
import sys
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


def spread(base: dict, arm: dict, only: list[int] | None = None) -> dict:
    """The paired differences arm - base on the seeds both have (of ``only``, when given), and their spread."""
    seeds = sorted(set(base) & set(arm) & (set(only) if only else set(base)))
    if len(seeds) < 2:
        print(f"fewer than 2 seeds in common (of {only or 'all'}): nothing to spread", file=sys.stderr)
        raise SystemExit(1)
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
    parser.add_argument("--shared", nargs=2, metavar=("BASE", "ARM"))
    parser.add_argument("--per-module", nargs=2, metavar=("BASE", "ARM"))
    parser.add_argument("--seeds", nargs="+", type=int, metavar="S", help="only these seeds (default: all shared)")
    parser.add_argument("--json", metavar="OUT")
    args = parser.parse_args()
    given = {name: pair for name, pair in (("shared_stream", args.shared), ("per_module", args.per_module)) if pair}
    if not given:
        parser.error("give --shared BASE ARM, --per-module BASE ARM, or both")
    result = {"label": "exploratory: spread of paired differences with and without shared initial weights (no "
                       "comparison is decided here)"}
    for name, (base, arm) in given.items():
        r = result[name] = spread(per_seed(base), per_seed(arm), args.seeds)
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
