"""Is ``scrnet compare`` calibrated? Simulated experiments with a known truth (``scrnet.experiments.calibration``),
decided by ``compare`` itself, and the power of the paired t for the seeds a user can afford.

1. One comparison: for each scenario and 3 or 5 seeds, ``--cli-experiments`` experiments with no true difference
   are written to disk as ``scrnet eval --json`` writes them and compared with ``scrnet compare ... --json``: the
   share of "better"/"worse" verdicts (about 5% for a calibrated 95% method; never below ``--min-seeds``) and of
   intervals holding 0. ``--experiments`` experiments with a known difference go through compare in-process: the
   share of intervals holding the true difference. 1b: the same coverage where the images dominate, also with a
   rare class (in 4 of 40 images), at 5 and 10 seeds.
2. Families: 3 and 5 variants against one baseline, 5 seeds, nothing differs: a false verdict anywhere in the family,
   with the plan's family (Holm) and with each comparison on its own (the old behaviour).
3. Looks: 5 then 10 seeds, nothing differs (false verdicts at either look) and a true difference (power), with the
   declared O'Brien-Fleming boundary, with two looks at 5% each (undeclared), and with one look at 10.
4. Equivalence: "equivalent" said when the true difference equals the margin (should be at most 5%), and when
   nothing differs (its power), 10 seeds.
5. A collapsing arm: the variant's runs alone collapse (lose 15 points of accuracy) with probability 0.2 and are
   better otherwise, so that the arms are equal on average: the share called "better" and "worse" (each
   false, 2.5% intended), the share flagged skewed, and the share the sign-flip p would call.
6. Power: the share of experiments in which a true difference of 0.5, 1, 1.5 or 2 seed-sd (the sd of the per-seed
   paired differences) is called "better", by number of seeds.

    python benchmarks/compare_calibration.py                    # about 25 minutes on 2 cores
    python benchmarks/compare_calibration.py --experiments 200 --cli-experiments 50   # a quick look
"""

import argparse
import contextlib
import functools
import io
import json
import tempfile
from pathlib import Path

import numpy as np

from scrnet.cli import main
from scrnet.config import config_to_dict, load_config
from scrnet.evaluation.counts import PerImageCounts
from scrnet.evaluation.metrics import METRICS_VERSION, miou_from
from scrnet.experiments.calibration import (
    RARE_CLASS,
    SCENARIOS,
    arm_label,
    as_runs,
    simulate,
    simulate_arms,
    true_difference,
)
from scrnet.experiments.compare import RunStats, compare, interval_between
from scrnet.experiments.intervals import difference_interval, verdict
from scrnet.experiments.plan import Plan

DECIDED = ("better", "worse")
PARTS = ("single", "coverage", "families", "looks", "equivalence", "collapse", "power")


@functools.cache
def run_config(k: int, seed: int, variant: bool) -> dict:
    return config_to_dict(load_config(None, ["model.name=scrnet_effl0", f"model.num_classes={k}", f"train.seed={seed}",
                                             f"model.srm.mode={'neighbor' if variant else 'bilinear'}"]))


def write_eval(path: Path, cms: np.ndarray, seed: int, variant: bool) -> Path:
    """One run's eval JSON + per-image counts, with the fields ``scrnet eval --json`` writes that compare reads."""
    k = cms.shape[-1]
    names = [f"class{c}" for c in range(k)]
    inter = np.stack([np.diagonal(c) for c in cms])
    union = cms.sum(1) + cms.sum(2) - inter
    PerImageCounts.from_confusion([f"img{i:03d}.png" for i in range(len(cms))], cms, inter, union).save(
        path.with_suffix(".npz"))
    total = cms.sum(0)
    ious = np.diagonal(total) / (total.sum(0) + total.sum(1) - np.diagonal(total))
    record = {"miou": float(miou_from(total)), "mbiou": float(ious.mean()), "iou": dict(zip(names, map(float, ious))),
              "num_images": len(cms), "dataset": "folder", "split": "val", "class_names": names,
              "per_image_counts": path.with_suffix(".npz").name, "metrics_version": METRICS_VERSION,
              "config": run_config(k, seed, variant)}
    path.write_text(json.dumps(record))
    return path


def through_cli(scenario, seeds: int, delta: float, rng, work: Path) -> dict:
    base, variant = simulate(scenario, seeds, delta, rng)
    paths = [write_eval(work / f"{name}_seed{s}.json", cms[s], s, name == "variant")
             for name, cms in (("base", base), ("variant", variant)) for s in range(seeds)]
    out, plan = work / "compare.json", work / "plan.yaml"
    plan.write_text(f"comparisons: [[model.srm.mode=neighbor, model.srm.mode=bilinear]]\nmetrics: [miou]\n"
                    f"seeds: {list(range(seeds))}\n")
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(["compare", *map(str, paths), "--json", str(out), "--plan", str(plan)])
    if code:
        raise SystemExit(f"scrnet compare exited with {code}")
    (c,) = [c for c in json.loads(out.read_text())["comparisons"] if c["metric"] == "miou"]
    return c


def known_intervals(scenario, seeds: int, experiments: int, rng) -> list:
    """compare's mIoU intervals for ``experiments`` simulated experiments with a known difference of 1 point of
    accuracy (paired, in-process)."""
    out = []
    for _ in range(experiments):
        base, variant = simulate(scenario, seeds, 0.01, rng)
        out.append(interval_between([RunStats.from_confusion(c) for c in variant],
                                    [RunStats.from_confusion(c) for c in base], "miou", True))
    return out


def single(experiments: int, cli_experiments: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    print(f"1. one comparison ({cli_experiments} experiments per row through `scrnet compare` on files, no difference; "
          f"{experiments} in-process with a known difference of 1 point of accuracy; 40 images)")
    print(f"{'scenario':<22}{'seeds':>6}{'better/worse, none':>20}{'coverage, none':>16}{'coverage, known':>17}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for scenario in SCENARIOS:
            for seeds in (3, 5):
                null = [through_cli(scenario, seeds, 0.0, rng, work) for _ in range(cli_experiments)]
                decided = np.mean([c["verdict"] in DECIDED for c in null])
                held = np.mean([c["low"] <= 0 <= c["high"] for c in null])
                truth = true_difference(scenario, 0.01)
                known = [iv.low <= truth <= iv.high for iv in known_intervals(scenario, seeds, experiments, rng)]
                print(f"{scenario.name:<22}{seeds:>6}{decided:>20.1%}{held:>16.1%}{np.mean(known):>17.1%}", flush=True)


def coverage(experiments: int, seed: int) -> None:
    rng = np.random.default_rng(seed + 5)
    print(f"\n1b. coverage where images dominate ({experiments} experiments per row, a known difference of 1 point of "
          f"accuracy, in-process); the rare class is in 4 of the 40 images")
    print(f"{'scenario':<22}{'seeds':>6}{'coverage':>10}{'image share of se^2':>21}")
    for scenario in (SCENARIOS[1], RARE_CLASS):
        truth = true_difference(scenario, 0.01)
        for seeds in (5, 10):
            intervals = known_intervals(scenario, seeds, experiments, rng)
            held = [iv.low <= truth <= iv.high for iv in intervals]
            share = [iv.image_var / iv.se ** 2 if iv.se > 0 else 0.0 for iv in intervals]
            print(f"{scenario.name:<22}{seeds:>6}{np.mean(held):>10.1%}{np.mean(share):>21.0%}", flush=True)


def plan_for(variants: int, seeds: int, looks=(), margin=None) -> Plan:
    return Plan([(arm_label(a), arm_label(0)) for a in range(1, variants + 1)], list(range(seeds)), ["miou"],
                list(looks), margin)


def any_decided(result) -> bool:
    return any(c["verdict"] in DECIDED for c in result["comparisons"] if c["metric"] == "miou")


def families(experiments: int, seed: int) -> None:
    rng = np.random.default_rng(seed + 1)
    scenario = SCENARIOS[0]
    print(f"\n2. families: a false verdict anywhere among K variants vs one baseline, 5 seeds, no difference "
          f"({experiments} experiments per row, {scenario.name})")
    print(f"{'variants':>9}{'Holm over the plan':>20}{'each on its own':>17}")
    for variants in (3, 5):
        holm = alone = 0
        for _ in range(experiments):
            runs = as_runs(simulate_arms(scenario, 5, [0.0] * (variants + 1), rng))
            holm += any_decided(compare(runs, plan=plan_for(variants, 5)))
            alone += any(any_decided(compare(runs, plan=Plan([(arm_label(a), arm_label(0))], list(range(5)))))
                         for a in range(1, variants + 1))
        print(f"{variants:>9}{holm / experiments:>20.1%}{alone / experiments:>17.1%}", flush=True)


def looks(experiments: int, seed: int) -> None:
    rng = np.random.default_rng(seed + 2)
    scenario = SCENARIOS[0]
    effect = 0.012
    print(f"\n3. looks at 5 then 10 seeds ({experiments} experiments per cell, {scenario.name}); power at a true "
          f"difference of {100 * true_difference(scenario, effect):.2f} mIoU points")
    print(f"{'design':<34}{'false verdicts':>15}{'power':>8}")
    declared, naive, fixed = plan_for(1, 10, looks=(5, 10)), (plan_for(1, 5), plan_for(1, 10)), plan_for(1, 10)
    rows = {"declared looks (O'Brien-Fleming)": [0, 0], "two looks at 5% each (undeclared)": [0, 0],
            "one look at 10 seeds": [0, 0]}
    for column, delta in enumerate((0.0, effect)):
        for _ in range(experiments):
            runs = as_runs(simulate_arms(scenario, 10, [0.0, delta], rng))
            first = [r for r in runs if r.seed < 5]
            rows["declared looks (O'Brien-Fleming)"][column] += any_decided(compare(first, plan=declared)) or \
                any_decided(compare(runs, plan=declared))
            rows["two looks at 5% each (undeclared)"][column] += any_decided(compare(first, plan=naive[0])) or \
                any_decided(compare(runs, plan=naive[1]))
            rows["one look at 10 seeds"][column] += any_decided(compare(runs, plan=fixed))
    for name, (false, power) in rows.items():
        print(f"{name:<34}{false / experiments:>15.1%}{power / experiments:>8.1%}", flush=True)


def equivalence(experiments: int, seed: int) -> None:
    rng = np.random.default_rng(seed + 3)
    print(f"\n4. equivalence, 10 seeds, margin = the true difference of 1 point of accuracy in mIoU points "
          f"({experiments} experiments per row)")
    print(f"{'scenario':<22}{'margin':>8}{'equivalent at the margin':>26}{'equivalent at 0':>17}")
    for scenario in SCENARIOS:
        margin = 100 * true_difference(scenario, 0.01)
        at_margin = at_zero = 0
        for _ in range(experiments):
            at_margin += compare(as_runs(simulate_arms(scenario, 10, [0.0, 0.01], rng)), margin=margin,
                                 plan=plan_for(1, 10))["comparisons"][0]["verdict"] == "equivalent"
            at_zero += compare(as_runs(simulate_arms(scenario, 10, [0.0, 0.0], rng)), margin=margin,
                               plan=plan_for(1, 10))["comparisons"][0]["verdict"] == "equivalent"
        print(f"{scenario.name:<22}{margin:>8.2f}{at_margin / experiments:>26.1%}{at_zero / experiments:>17.1%}",
              flush=True)


def collapse(experiments: int, seed: int) -> None:
    rng = np.random.default_rng(seed + 4)
    scenario = SCENARIOS[0]
    prob, drop = 0.2, 0.15

    def truth(gain: float) -> float:  # the expected mIoU difference when the variant is ``gain`` better uncollapsed
        return (1 - prob) * true_difference(scenario, gain) + prob * true_difference(scenario, gain - drop)

    low, high = 0.0, drop
    for _ in range(50):  # the gain that makes the arms equal on average
        mid = (low + high) / 2
        low, high = (mid, high) if truth(mid) < 0 else (low, mid)
    gain = (low + high) / 2
    print(f"\n5. a collapsing arm: the variant's runs alone lose {100 * drop:g} points of accuracy with probability "
          f"{prob:g} and are {100 * gain:.2f} points better otherwise, so that the arms are equal on average (true "
          f"mIoU difference {100 * truth(gain):+.3f} points); 5 seeds, {experiments} experiments, {scenario.name}. "
          f"Each one-sided false verdict should be said at most 2.5% of the time")
    better = worse = flagged = perm = 0
    for _ in range(experiments):
        runs = as_runs(simulate_arms(scenario, 5, [0.0, gain], rng, collapse=(1, prob, drop)))
        c = compare(runs, plan=plan_for(1, 5))["comparisons"][0]
        better += c["verdict"] == "better"
        worse += c["verdict"] == "worse"
        flagged += c["skewed"]
        perm += c["permutation_p"] < 0.05
    print(f"called better: {better / experiments:.1%}; called worse: {worse / experiments:.1%}; flagged skewed: "
          f"{flagged / experiments:.1%}; sign-flip p < 0.05: {perm / experiments:.1%} (at 5 seeds its smallest p is "
          f"1/16)")


def power(reps: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    effects = (0.5, 1.0, 1.5, 2.0)
    print(f"\n6. power: share of {reps} experiments called 'better' (paired t, 95%, a family of one), by true "
          f"difference in seed-sd of the per-seed differences")
    print(f"{'seeds':>6}" + "".join(f"{f'{e:g} sd':>10}" for e in effects))
    for seeds in (5, 8, 10, 15, 20):
        shares = []
        for e in effects:
            hits = 0
            for _ in range(reps):
                d = rng.normal(e, 1.0, seeds)
                still = np.zeros((seeds, 2))
                iv = difference_interval(d, np.zeros(seeds), still + d[:, None], still, paired=True)
                hits += verdict(iv)[0] == "better"
            shares.append(hits / reps)
        print(f"{seeds:>6}" + "".join(f"{s:>10.0%}" for s in shares))


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--experiments", type=int, default=2000, help="simulated experiments per in-process row "
                                                                "(default 2000)")
    p.add_argument("--cli-experiments", type=int, default=200, help="experiments per row through the CLI and files "
                                                                    "(default 200)")
    p.add_argument("--power-reps", type=int, default=4000, help="experiments per power cell (default 4000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", nargs="+", choices=PARTS, help="run only these parts")
    return p.parse_args()


if __name__ == "__main__":
    args = parse_args()
    parts = {"single": lambda: single(args.experiments, args.cli_experiments, args.seed),
             "coverage": lambda: coverage(args.experiments, args.seed),
             "families": lambda: families(args.experiments, args.seed),
             "looks": lambda: looks(args.experiments, args.seed),
             "equivalence": lambda: equivalence(args.experiments, args.seed),
             "collapse": lambda: collapse(args.experiments, args.seed),
             "power": lambda: power(args.power_reps, args.seed)}
    for name in args.only or PARTS:
        parts[name]()
