"""``scrnet compare``: an ablation table from evaluations a user already made, with intervals that hold both
seed-to-seed and image-to-image variation.

Inputs are eval JSON files written by ``scrnet eval --json`` (each with its per-image counts beside it, same name
with ``.npz``) or training work dirs holding one as ``eval.json`` (what ``scrnet study`` writes). Runs are grouped by
their resolved config without ``train.seed`` (and without keys that do not change what is trained: paths, logging,
workers, device); a group's label is the set of keys whose values differ between the groups, so nothing is typed by
hand. Runs that were not scored the same way (data set, split, classes, images, eval protocol) are refused.

Each group is compared with the baseline group on every metric (``experiments/intervals.py`` states the method): the
difference of the groups' means, paired by seed when both groups have the same seeds (Welch's form when they share
none; partly overlapping seeds are refused unless ``unpaired``), with a standard error that adds the seed-to-seed
variance and a leave-one-image-out jackknife image term (without the run-by-image part the seed term already holds),
and a t with Satterthwaite degrees of freedom. The comparisons form a family, tested together with Holm's adjustment:
every comparison of the call, or, with a plan (``experiments/plan.py``), the plan's pairs x metrics, at the level of
the plan's look; comparisons outside a plan are "exploratory", with no verdict. Verdicts: "better"/"worse" (adjusted
p below the level), "equivalent" and "no worse" against a margin in points, else "inconclusive", and always
"inconclusive" with fewer than ``min_seeds`` (default 5) seeds; an inconclusive comparison says how many paired seeds
would give 80% power. Beside the t, a sign-flip (permutation) p and a flag for strongly skewed per-seed differences.
Runs scored by different metric definitions (``metrics_version``) are refused unless asked. Fractions in 0..1, like
``scrnet eval``; margins and effects in points.
"""

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import ConfigError, config_from_dict, config_to_dict
from ..errors import ScrnetError
from ..evaluation.counts import PerImageCounts, class_counts, counts_path
from ..evaluation.metrics import METRICS_VERSION, mean_ratio
from ..overrides import flatten
from .intervals import (
    ALPHA,
    MIN_SEEDS,
    Interval,
    PValues,
    decide,
    difference_interval,
    holm,
    p_values,
    permutation_p,
    seeds_needed,
    sign_flip_p,
    strongly_skewed,
)
from .plan import Plan, look_index, read_looks, record_look, sequential_levels, undeclared_before

# Keys that do not change what a run trains or how it is scored: never part of a group or a label.
IGNORED_KEYS = ("data.root", "train.device", "train.num_workers", "train.log_interval", "train.checkpoint_interval",
                "train.keep_last", "train.max_nonfinite", "train.tensorboard", "train.dist_timeout_s",
                "train.cudnn_benchmark", "format_version")
SEED_KEY = "train.seed"
EVAL_SPEED_KEYS = ("eval.window_batch",)  # how fast, not what, eval scores: runs that differ in it are comparable
# compared with intervals (Boundary IoU when every run's counts hold it); key in the eval JSON -> column name
METRICS = {"miou": "mIoU", "mbiou": "BIoU*", "boundary_iou": "Boundary IoU"}
METHOD = ("paired t over seeds (Welch's t when unpaired) with a leave-one-image-out jackknife image term less the "
          "run-by-image part, Satterthwaite degrees of freedom")
EFFECT = 0.5  # points: the difference an inconclusive comparison's seeds-needed is sized for, without a margin


class CompareError(ScrnetError, ValueError):
    """Runs that cannot be compared (one line naming the runs and what differs)."""

    usage = True


def fmt_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, list):
        return "[" + ",".join(fmt_value(v) for v in value) + "]"
    return str(value)


@dataclass
class Run:
    path: str  # as the user gave it
    record: dict  # the eval JSON
    counts: PerImageCounts
    config: dict  # flattened resolved config

    @property
    def seed(self):
        return self.config.get(SEED_KEY)

    def identity(self) -> tuple:
        return tuple(sorted((k, fmt_value(v)) for k, v in self.config.items()
                            if k not in IGNORED_KEYS and k != SEED_KEY and not k.startswith("eval.")))


def load_run(path: str | Path) -> Run:
    """An eval JSON, or a work dir with ``eval.json``; its per-image counts must sit beside it."""
    p = Path(path)
    json_path = p / "eval.json" if p.is_dir() else p
    if not json_path.is_file():
        hint = (f"; score it first: scrnet eval {p}/checkpoints/<checkpoint>.pth --json {json_path}"
                if p.is_dir() else "")
        raise FileNotFoundError(f"{json_path}: no eval JSON{hint}")
    try:
        record = json.loads(json_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CompareError(f"{json_path}: not an eval JSON ({exc})") from None
    missing = [k for k in ("config", "per_image_counts", "miou", "class_names") if k not in record]
    if missing:
        raise CompareError(f"{json_path}: lacks {', '.join(missing)}: written by an scrnet eval older than compare; "
                           f"rerun scrnet eval ... --json {json_path}")
    npz = counts_path(json_path)
    if not npz.is_file():
        raise FileNotFoundError(f"{npz}: the per-image counts of {json_path} are missing (scrnet eval --json writes "
                                f"both)")
    counts = PerImageCounts.load(npz)
    if counts.num_classes != len(record["class_names"]):
        raise CompareError(f"{npz}: counts for {counts.num_classes} classes, but {json_path} names "
                           f"{len(record['class_names'])}")
    try:  # through the current schema: keys added since the run was scored get their defaults
        config = config_to_dict(config_from_dict(record["config"], str(json_path)))
    except (ConfigError, ValueError) as exc:
        raise CompareError(f"{json_path}: its config does not load: {exc}") from None
    return Run(str(path), record, counts, flatten(config))


def check_comparable(runs: list[Run]) -> None:
    """Every run scored on the same data set, split, classes, images and eval protocol, or a CompareError."""
    first = runs[0]

    def facts(run: Run) -> dict:
        out = {"dataset": run.record.get("dataset"), "split": run.record.get("split"),
               "class_names": run.record["class_names"], "images": run.counts.images}
        out.update({k: fmt_value(v) for k, v in run.config.items()
                    if k.startswith("eval.") and k not in EVAL_SPEED_KEYS})
        return out

    ref = facts(first)
    for run in runs[1:]:
        mine = facts(run)
        for key in sorted(set(ref) | set(mine)):
            if ref.get(key) != mine.get(key):
                a, b = ref.get(key), mine.get(key)
                if key == "images":
                    a, b = f"{len(a or [])} images", f"{len(b or [])} images" + (
                        "" if len(a or []) != len(b or []) else " (other names)")
                raise CompareError(f"runs {first.path} and {run.path} are not comparable: {key} differs ({a} vs {b})")


@dataclass
class Group:
    runs: list[Run]
    overrides: dict = field(default_factory=dict)  # the keys that differ between groups -> this group's value

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={fmt_value(v)}" for k, v in self.overrides.items()) or "all runs"

    @property
    def seeds(self) -> list:
        return [r.seed for r in self.runs]


def group_runs(runs: list[Run]) -> list[Group]:
    """Groups in the order their first run was given; two runs of one group with the same seed are refused."""
    by_identity: dict[tuple, Group] = {}
    for run in runs:
        group = by_identity.setdefault(run.identity(), Group([]))
        clash = [r for r in group.runs if r.seed == run.seed]
        if clash:
            raise CompareError(f"runs {clash[0].path} and {run.path} have the same config and the same seed "
                               f"({SEED_KEY}={run.seed}): give each run once")
        group.runs.append(run)
    groups = list(by_identity.values())
    keys = sorted({k for g in groups for k, _ in g.runs[0].identity()})
    varying = [k for k in keys if len({fmt_value(g.runs[0].config.get(k)) for g in groups}) > 1]
    for g in groups:
        g.overrides = {k: g.runs[0].config.get(k) for k in varying}
    return groups


def find_group(groups: list[Group], name: str, what: str) -> int:
    """Index of the group ``name`` names: the group holding the run at that path, the group with that label, or the
    one group whose overrides include every ``key=value`` given (comma-separated); ``what`` says who asked (for the
    error)."""
    for i, g in enumerate(groups):
        if any(Path(r.path).resolve() == Path(name).resolve() for r in g.runs) or g.label == name:
            return i
    wanted = [part.strip() for part in name.split(",") if part.strip()]
    matches = [i for i, g in enumerate(groups)
               if wanted and all(w in {f"{k}={fmt_value(v)}" for k, v in g.overrides.items()} for w in wanted)]
    if len(matches) == 1:
        return matches[0]
    labels = "; ".join(g.label for g in groups)
    raise CompareError(f"{what} {name!r} {'matches several groups' if matches else 'matches no run or group'}"
                       f" (groups: {labels})")


def find_baseline(groups: list[Group], baseline: str | None) -> int:
    """Index of the baseline group: the first by default, else :func:`find_group`'s."""
    return 0 if baseline is None else find_group(groups, baseline, "--baseline")


def check_metric_versions(runs: list[Run], allow_mixed: bool) -> int | None:
    """The metric-definition version every run was scored with (``None``: unrecorded, scored before it was kept);
    runs scored by different definitions are refused, naming two of them, unless ``allow_mixed``."""
    versions: dict = {}
    for run in runs:
        versions.setdefault(run.record.get("metrics_version"), run)
    if len(versions) > 1 and not allow_mixed:
        (va, ra), (vb, rb) = list(versions.items())[:2]
        name = lambda v: "unrecorded" if v is None else str(v)  # noqa: E731
        raise CompareError(f"runs {ra.path} and {rb.path} were scored by different metric definitions "
                           f"(metrics_version {name(va)} vs {name(vb)}; this scrnet scores version {METRICS_VERSION}):"
                           f" score them again with this scrnet, or --allow-mixed-metrics to pool them anyway")
    return next(iter(versions)) if len(versions) == 1 else None


class RunStats:
    """A run's per-image counts as matrices: its metric as scored and without each image in turn. Every metric is a
    mean over classes of summed numerators over summed denominators (IoU: true positives over ground truth +
    prediction - true positives), so leaving an image out subtracts its row: ``N x K`` numbers per metric."""

    def __init__(self, tp: np.ndarray, gt: np.ndarray, pred: np.ndarray, inter: np.ndarray | None = None,
                 union: np.ndarray | None = None, boundary_inter: np.ndarray | None = None,
                 boundary_union: np.ndarray | None = None):
        """``tp``/``gt``/``pred``: ``N x K`` true positives, ground-truth and predicted pixels; ``inter``/``union``:
        ``N x K`` BIoU* counts; ``boundary_*``: ``N x K`` Boundary IoU counts (each pair optional)."""
        self.ratios = {name: (num.astype(np.float64), den.astype(np.float64))
                       for name, num, den in (("miou", tp, gt + pred - tp), ("mbiou", inter, union),
                                              ("boundary_iou", boundary_inter, boundary_union))
                       if num is not None}
        self._cache: dict[str, tuple[float, np.ndarray]] = {}

    @classmethod
    def of(cls, run: Run) -> "RunStats":
        return cls.of_counts(run.counts)

    @classmethod
    def of_counts(cls, c: PerImageCounts) -> "RunStats":
        return cls(c.tp, c.gt, c.pred, c.biou_inter, c.biou_union, c.boundary_inter, c.boundary_union)

    @classmethod
    def from_confusion(cls, confusion: np.ndarray) -> "RunStats":
        """mIoU only, from per-image confusion matrices ``N x K x K`` (e.g. simulated ones)."""
        return cls(*class_counts(confusion))

    def has(self, name: str) -> bool:
        return name in self.ratios

    def scored_and_loo(self, name: str) -> tuple[float, np.ndarray]:
        """The metric on the images as scored, and on all images but image ``i`` for each ``i`` (``N`` values)."""
        if name not in self._cache:
            num, den = self.ratios[name]
            scored = mean_ratio(num.sum(0), den.sum(0))
            loo = mean_ratio(num.sum(0)[None] - num, den.sum(0)[None] - den)
            self._cache[name] = (float(scored), loo)
        return self._cache[name]


def interval_between(mine: list[RunStats], theirs: list[RunStats], metric: str, paired: bool) -> Interval:
    """The 95% interval of mean(mine) - mean(theirs) on ``metric``; ``paired``: ``mine[i]`` and ``theirs[i]`` share
    a seed."""
    a = [st.scored_and_loo(metric) for st in mine]
    b = [st.scored_and_loo(metric) for st in theirs]
    return difference_interval(np.array([v for v, _ in a]), np.array([v for v, _ in b]), np.stack([d for _, d in a]),
                               np.stack([d for _, d in b]), paired)


def _mean_sd(values: list) -> dict:
    vals = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return {"mean": None, "sd": None}
    sd = float(np.std(vals, ddof=1)) if len(vals) > 1 else None
    return {"mean": float(np.mean(vals)), "sd": sd}


def summarise_group(g: Group) -> dict:
    names = g.runs[0].record["class_names"]
    out = {"label": g.label, "overrides": g.overrides, "runs": [r.path for r in g.runs], "seeds": g.seeds,
           "miou": _mean_sd([r.record["miou"] for r in g.runs]),
           "mbiou": _mean_sd([r.record.get("mbiou") for r in g.runs]),
           "per_seed": [{"seed": r.seed, "miou": r.record["miou"], "mbiou": r.record.get("mbiou")} for r in g.runs]}
    if all("boundary_iou" in r.record for r in g.runs):
        out["boundary_iou"] = _mean_sd([r.record["boundary_iou"]["mean"] for r in g.runs])
    tolerances = [set(r.record.get("boundary_f", {})) for r in g.runs]
    modes = {r.record.get("boundary_f_mode", "pooled") for r in g.runs}  # JSONs before the modes: pooled
    if tolerances and tolerances[0] and all(t == tolerances[0] for t in tolerances) and len(modes) == 1:
        out["boundary_f"] = {t: _mean_sd([r.record["boundary_f"][t]["mean"] for r in g.runs])
                             for t in sorted(tolerances[0], key=float)}
        out["boundary_f_mode"] = modes.pop()
    bands = [[(b["from"], b["to"]) for b in r.record.get("distance_bands", [])] for r in g.runs]
    if bands and bands[0] and all(b == bands[0] for b in bands):
        out["distance_bands"] = [{"from": lo, "to": hi, **_mean_sd([r.record["distance_bands"][i]["miou"]
                                                                     for r in g.runs])}
                                 for i, (lo, hi) in enumerate(bands[0])]
    out["iou"] = {c: _mean_sd([r.record["iou"].get(c) for r in g.runs])["mean"] for c in names}
    return out


def pairing(group: Group, base: Group, unpaired: bool) -> tuple[list[Run], list[Run], bool]:
    """The runs of ``group`` and ``base`` to compare, and whether they are paired by seed: paired when both groups
    have exactly the same seeds, unpaired when they share none (or ``unpaired`` is asked for); partly overlapping
    seeds are refused, naming the runs without a partner, so no run is ever dropped."""
    mine, theirs = {r.seed: r for r in group.runs}, {r.seed: r for r in base.runs}
    if not unpaired and set(mine) == set(theirs):
        seeds = [r.seed for r in group.runs]
        return [mine[s] for s in seeds], [theirs[s] for s in seeds], True
    if unpaired or not set(mine) & set(theirs):
        return group.runs, base.runs, False
    alone = [r.path for r in group.runs if r.seed not in theirs] + [r.path for r in base.runs if r.seed not in mine]
    raise CompareError(f"group {group.label!r} (seeds {','.join(map(fmt_value, mine))}) and the baseline "
                       f"{base.label!r} (seeds {','.join(map(fmt_value, theirs))}) share only some seeds; runs "
                       f"without a partner: {', '.join(alone)}. Give both groups the same seeds, or --unpaired to "
                       f"compare all runs without pairing")


def compare(runs: list[Run], baseline: str | None = None, min_seeds: int = MIN_SEEDS, margin: float | None = None,
            unpaired: bool = False, plan: Plan | None = None, looks_record: str | Path | None = None,
            effect: float = EFFECT, allow_mixed_metrics: bool = False) -> dict:
    """The ``scrnet compare`` result: ``{"groups", "comparisons", "family", "baseline", "method", ...}``.

    ``margin`` (points): "equivalent" / "no worse" may be said against it (a plan's margin wins); ``min_seeds``: fewest
    seeds for any verdict but "inconclusive"; ``unpaired``: compare groups without pairing runs by seed; ``plan``:
    the family (its pairs x metrics) and the looks, other comparisons exploratory; ``looks_record``: the study's
    record of looks (``looks.jsonl``), read for undeclared earlier looks and appended to; ``effect`` (points): what
    seeds-needed is sized for when no margin is stated; ``allow_mixed_metrics``: pool runs scored by different metric
    definitions.

    In four steps: which pairs are compared (:func:`comparison_pairs`), each pair's interval on each metric
    (:func:`interval_row`), the look the runs are at and its level (:func:`look_level`), and each row's verdict under
    the family's adjustment (:func:`decide_rows`)."""
    if not runs:
        raise CompareError("no runs to compare")
    check_options(min_seeds, margin, effect)
    check_comparable(runs)
    version = check_metric_versions(runs, allow_mixed_metrics)
    groups = group_runs(runs)
    b = find_baseline(groups, baseline)
    stats = {id(r): RunStats.of(r) for r in runs}
    metrics = [m for m in METRICS if all(st.has(m) for st in stats.values())]
    alpha = plan.alpha if plan else ALPHA
    margin = plan.margin if plan and plan.margin is not None else margin

    pairs, planned = comparison_pairs(groups, b, plan, metrics, runs)
    rows = [interval_row(groups[gi], groups[bi], metric, stats, unpaired,
                         in_family=plan is None or (gi, bi, metric) in planned)
            for gi, bi in pairs for metric in metrics]
    family = [row for row in rows if row["in_family"]]
    seeds_at_look = min((row["seeds"] for row in family), default=0)
    level, look, between, interim = look_level(plan, alpha, seeds_at_look)
    warnings = note_look(looks_record, seeds_at_look, alpha, declared=bool(plan) and between is None)
    decide_rows(rows, family, Decision(level, min_seeds, margin, effect, between, interim,
                                       bonferroni=alpha / max(len(family), 1), images=len(runs[0].counts.images)))
    return {"baseline": groups[b].label, "groups": [summarise_group(g) for g in groups], "comparisons": rows,
            "method": METHOD, "min_seeds": min_seeds, "margin": margin, "effect": effect, "metrics": metrics,
            "family": {"size": len(family), "adjustment": "Holm", "alpha": alpha, "level": level,
                       "source": "plan" if plan else "every comparison of this call",
                       "plan": plan.to_dict() if plan else None, "look": look},
            "metrics_version": version, "images": len(runs[0].counts.images), "warnings": warnings,
            "protocol": study_protocol(runs)}


def check_options(min_seeds: int, margin: float | None, effect: float) -> None:
    if min_seeds < 2:
        raise CompareError(f"--min-seeds {min_seeds}: a verdict needs the seed-to-seed variance, so at least 2")
    if margin is not None and not margin > 0:
        raise CompareError(f"--margin {margin}: a margin is a positive number of points")
    if not effect > 0:
        raise CompareError(f"--effect {effect}: the difference to size seeds for is a positive number of points")


def comparison_pairs(groups: list[Group], b: int, plan: Plan | None, metrics: list[str],
                     runs: list[Run]) -> tuple[list[tuple[int, int]], set[tuple[int, int, str]]]:
    """Every group against the baseline ``b``, then the plan's pairs not among them (as group indices); and the
    planned ``(group, baseline, metric)`` triples. A plan naming a metric the counts lack, a group twice, or seeds
    it did not fix is a :class:`CompareError`."""
    pairs = [(i, b) for i in range(len(groups)) if i != b]
    planned: set[tuple[int, int, str]] = set()
    if not plan:
        return pairs, planned
    missing = [m for m in plan.metrics if m not in metrics]
    if missing:
        raise CompareError(f"the plan tests {missing[0]}, which not every run's counts hold")
    for group_name, base_name in plan.comparisons:
        pair = (find_group(groups, group_name, "plan comparison"), find_group(groups, base_name, "plan baseline"))
        if pair[0] == pair[1]:
            raise CompareError(f"plan comparison {group_name!r} vs {base_name!r}: both name group "
                               f"{groups[pair[0]].label!r}")
        pairs += [pair] if pair not in pairs else []
        planned |= {(*pair, m) for m in plan.metrics}
    outside = sorted({r.seed for r in runs} - set(plan.seeds), key=fmt_value)
    if outside:
        raise CompareError(f"seeds {', '.join(map(fmt_value, outside))} are not in the plan (seeds "
                           f"{', '.join(map(fmt_value, plan.seeds))}): a plan's seeds are fixed before its runs")
    return pairs, planned


def interval_row(g: Group, against: Group, metric: str, stats: dict, unpaired: bool, in_family: bool) -> dict:
    """One comparison's row before its verdict: the interval (kept under ``_interval`` until decided), the
    permutation p beside the t, and the seeds on each side."""
    mine, theirs, paired = pairing(g, against, unpaired)
    interval = interval_between([stats[id(r)] for r in mine], [stats[id(r)] for r in theirs], metric, paired)
    if paired:
        perm = sign_flip_p(np.array(interval.per_seed)) if interval.seeds >= 2 else None
        skewed = strongly_skewed(np.array(interval.per_seed))
    else:
        values = [[stats[id(r)].scored_and_loo(metric)[0] for r in side] for side in (mine, theirs)]
        perm = permutation_p(np.array(values[0]), np.array(values[1])) if min(map(len, values)) >= 2 else None
        skewed = False
    return {"group": g.label, "baseline": against.label, "metric": metric, **interval.to_json(),
            "in_family": in_family, "pairing": "paired" if paired else "unpaired", "permutation_p": perm,
            "skewed": skewed, "group_seeds": [r.seed for r in mine], "baseline_seeds": [r.seed for r in theirs],
            "paired_seeds": [r.seed for r in mine] if paired else [], "_interval": interval}


def look_level(plan: Plan | None, alpha: float,
               seeds: int) -> tuple[float, dict | None, str | None, str | None]:
    """The level a verdict needs at ``seeds`` (the plan's look there, else ``alpha``); the look's description;
    between declared looks, why no verdict is given; at a declared look before the last, what an undecided
    comparison is told to do."""
    if not plan:
        return alpha, None, None, None
    k = look_index(plan, seeds)
    look = {"seeds": seeds, "index": k, "looks": plan.looks,
            "levels": sequential_levels(plan.looks, alpha) if len(plan.looks) > 1 else [alpha]}
    if k is None:
        between = f"{seeds} seeds is not a look of the plan (looks at {', '.join(map(str, plan.looks))} seeds)"
        return alpha, look, between, None
    interim = (f"interim look {k + 1} of {len(plan.looks)}: continue to {plan.looks[-1]} seeds"
               if k < len(plan.looks) - 1 else None)
    return look["levels"][k], look, None, interim


def note_look(looks_record: str | Path | None, seeds: int, alpha: float, declared: bool) -> list[str]:
    """Append this look to the study's record; a warning when seeds were added after an undeclared earlier look."""
    if looks_record is None:
        return []
    record = Path(looks_record)
    earlier = undeclared_before(read_looks(record), seeds)
    record_look(record, seeds, declared=declared)
    if not earlier:
        return []
    return [f"seeds were added after an undeclared look at {', '.join(map(str, earlier))} seeds ({record}): the "
            f"chance of a false verdict is above {alpha:g}; declare looks in a plan, or decide on fresh seeds"]


@dataclass
class Decision:
    """What every row's verdict is decided under."""
    level: float  # the adjusted p a verdict needs
    min_seeds: int
    margin: float | None  # points
    effect: float  # points
    between: str | None  # why a plan's comparison gets no verdict between its looks
    interim: str | None  # what an undecided comparison of the plan is told at a look before the last
    bonferroni: float  # the per-comparison level seeds-needed is sized at
    images: int


def decide_rows(rows: list[dict], family: list[dict], d: Decision) -> None:
    """Each row's verdict, in place: the family's rows under Holm's adjustment at ``d.level`` (with the
    equivalence and non-inferiority tests when there is a margin), the others "exploratory"; an inconclusive or
    exploratory row also gets the seeds that would decide it."""
    fraction = None if d.margin is None else d.margin / 100
    raw = [p_values(row["_interval"], fraction) for row in family]
    adjusted = {"diff": holm([t.diff for t in raw])}
    if fraction is not None:
        adjusted["equivalent"] = holm([t.equivalent for t in raw])
        adjusted["no_worse"] = holm([t.no_worse for t in raw])
    position = {id(row): i for i, row in enumerate(family)}
    for row in rows:
        interval = row.pop("_interval")
        if row["in_family"]:
            i = position[id(row)]
            tests = PValues(adjusted["diff"][i], *(adjusted[k][i] for k in ("equivalent", "no_worse") if k in adjusted))
            word, why = decide(interval, tests, d.level, d.min_seeds, fraction)
            if d.between and word != "inconclusive" and interval.seeds >= d.min_seeds:
                word, why = "inconclusive", d.between
            elif d.interim and word == "inconclusive" and interval.seeds >= d.min_seeds:
                why += f"; {d.interim}"
            row.update(p_adjusted=tests.diff, p_equivalent=tests.equivalent, p_no_worse=tests.no_worse)
        else:
            word, why = "exploratory", "not in the plan: no verdict"
            row.update(p_adjusted=None, p_equivalent=None, p_no_worse=None)
        row.update(p=interval.p, verdict=word, why=why, too_few_seeds=interval.seeds < d.min_seeds)
        row["seeds_needed"] = None
        if word in ("inconclusive", "exploratory") and interval.seed_var is not None and interval.seeds >= 2:
            sd = math.sqrt(interval.seed_var * interval.seeds)
            row["seeds_needed"] = seeds_needed(sd, interval.image_var, d.images,
                                               (d.margin if d.margin is not None else d.effect) / 100, d.bonferroni)


def study_protocol(runs: list[Run]) -> str:
    """``end-to-end`` (every run trained its whole backbone), ``decoder study (model.frozen_stages=N)`` (every run
    froze the same backbone stages: the comparison speaks for decoders on those frozen features only) or ``mixed
    frozen stages`` (the groups differ in what they froze)."""
    frozen = {r.config.get("model.frozen_stages", -1) for r in runs}
    if frozen == {-1}:
        return "end-to-end"
    if len(frozen) == 1:
        return f"decoder study (model.frozen_stages={frozen.pop()})"
    return "mixed frozen stages"


def _pct(v, signed: bool = False) -> str:
    if v is None:
        return "n/a"
    return f"{100 * v:+.2f}" if signed else f"{100 * v:.2f}"


def _mean_sd_text(block: dict | None) -> str:
    if not block or block["mean"] is None:
        return "n/a"
    return _pct(block["mean"]) + ("" if block["sd"] is None else f" ± {_pct(block['sd'])}")


def verdict_text(c: dict) -> str:
    """A comparison's verdict as the tables print it: "inconclusive (3 seeds)" when the seeds were too few, with
    "skewed" when its per-seed differences are."""
    if c["too_few_seeds"] and c["verdict"] != "exploratory":
        word = f"inconclusive ({c['seeds']} seed{'s' if c['seeds'] != 1 else ''})"
    else:
        word = c["verdict"]
    return word + (", skewed" if c.get("skewed") else "")


def _p(v) -> str:
    return "n/a" if v is None else f"{v:.3f}" if v >= 0.001 else f"{v:.1e}"


def seeds_needed_text(c: dict, result: dict) -> str:
    """How many paired seeds an undecided comparison needs for 80% power, or why none would do."""
    if c["verdict"] not in ("inconclusive", "exploratory") or c["seed_var"] is None or c["seeds"] < 2:
        return ""
    size = result["margin"] if result["margin"] is not None else result["effect"]
    if c["seeds_needed"] is None:
        return f"no number of seeds resolves {size:g} points: the image term alone is too wide (more images)"
    return f"{c['seeds_needed']} paired seeds for 80% power at {size:g} points"


def seeds_text(c: dict | None, group: dict) -> str:
    """The seeds of a group's row; against the baseline, those compared and how (paired or unpaired)."""
    if c is None:
        return ",".join(fmt_value(s) for s in group["seeds"])
    return ",".join(fmt_value(s) for s in c["group_seeds"]) + f" ({c['pairing']})"


def table_rows(result: dict) -> tuple[list[str], list[list[str]]]:
    """The main table: one row per group; the baseline's difference columns read 'baseline'. Per metric with an
    interval: mean ± sd over seeds, the difference and its interval, the verdict (mIoU also by seed); Boundary IoU
    without per-image counts (files scored before they were kept): its mean ± sd only."""
    by_group = {}
    for c in result["comparisons"]:
        if c["baseline"] == result["baseline"]:
            by_group.setdefault(c["group"], {})[c["metric"]] = c
    compared = result["metrics"]
    head = ["group", "seeds"]
    for metric in compared:
        name = METRICS[metric]
        head += [name] + (["mIoU by seed"] if metric == "miou" else []) + [f"Δ {name} [95% CI]", "p (Holm)",
                                                                            "verdict"]
    mean_only = "boundary_iou" not in compared and all("boundary_iou" in g for g in result["groups"])
    if mean_only:
        head.append("Boundary IoU")
    rows = []
    for g in result["groups"]:
        mine = by_group.get(g["label"], {})
        row = [g["label"], seeds_text(mine.get("miou"), g)]
        for metric in compared:
            c = mine.get(metric)
            row.append(_mean_sd_text(g.get(metric)))
            if metric == "miou":
                row.append(" / ".join(_pct(r["miou"]) for r in g["per_seed"]))
            if c is None:
                row += ["baseline", "", ""]
            else:
                row += [f"{_pct(c['diff'], True)} [{_pct(c['low'], True)}, {_pct(c['high'], True)}]",
                        _p(c["p_adjusted"]), verdict_text(c)]
        if mean_only:
            row.append(_mean_sd_text(g["boundary_iou"]))
        rows.append(row)
    return head, rows


def method_note(result: dict, markdown: bool = False) -> str:
    """The sentences under every table: what the numbers are, how the intervals were made, the family the verdicts
    were corrected over, and the level they were made at."""
    label = f"`{result['baseline']}`" if markdown else result["baseline"]
    fam = result["family"]
    margin = ("" if result.get("margin") is None else
              f"; margin ±{result['margin']:g} points: \"equivalent\" when both one-sided tests reject, \"no worse\" "
              f"when the one against -{result['margin']:g} does")
    look = fam.get("look")
    at = ""
    if look and len(look["looks"]) > 1:
        where = "not a declared look" if look["index"] is None else f"look {look['index'] + 1} of {len(look['looks'])}"
        at = (f"; looks at {', '.join(map(str, look['looks']))} seeds (O'Brien-Fleming spending: nominal p "
              f"{', '.join(f'{v:.4f}' for v in look['levels'])}), this is {where} ({look['seeds']} seeds)")
    outside = "; comparisons outside the plan are exploratory, with no verdict" if fam["source"] == "plan" else ""
    protocol = result.get("protocol", "end-to-end")
    protocol = "" if protocol == "end-to-end" else f"{protocol}: "
    return (f"{protocol}mean ± sd over seeds, in points; Δ: against the baseline ({label}) unless a row names "
            f"another, 95% "
            f"interval: {result['method']} ({result['images']} images); p (Holm): adjusted over a family of "
            f"{fam['size']} comparison{'s' if fam['size'] != 1 else ''} ({fam['source']}), a verdict at adjusted p < "
            f"{fam['level']:.4g}{at}{outside}; a verdict needs {result['min_seeds']} seeds{margin}, otherwise "
            f"\"inconclusive\"")


def tests_rows(result: dict) -> tuple[list[str], list[list[str]]]:
    """One row per comparison: the difference, its p, Holm-adjusted p, the permutation p beside the t, the verdict
    and, when undecided, the seeds that would decide it."""
    head = ["comparison", "metric", "Δ [95% CI]", "p", "p (Holm)", "permutation p", "verdict", "to decide"]
    rows = []
    for c in result["comparisons"]:
        rows.append([f"{c['group']} vs {c['baseline']}", METRICS[c["metric"]],
                     f"{_pct(c['diff'], True)} [{_pct(c['low'], True)}, {_pct(c['high'], True)}]", _p(c["p"]),
                     _p(c["p_adjusted"]), _p(c["permutation_p"]), verdict_text(c), seeds_needed_text(c, result)])
    return head, rows


TESTS_NOTE = ("every comparison: p of the t, Holm-adjusted p in the family, the sign-flip (paired) or "
              "label-permutation p over the seeds beside it; \"skewed\": the per-seed differences are strongly skewed "
              "(a collapsed seed?), so trust the permutation p over the t")


def boundary_rows(result: dict) -> tuple[list[str], list[list[str]]] | None:
    """Boundary F per tolerance and mIoU per distance band, mean ± sd over seeds, when every group has the same
    ones (no interval: their per-image counts are not stored)."""
    groups = result["groups"]
    first = groups[0]
    tols, bands = list(first.get("boundary_f", {})), [(b["from"], b["to"]) for b in first.get("distance_bands", [])]
    mode = first.get("boundary_f_mode", "pooled")
    if not (tols or bands) or any(list(g.get("boundary_f", {})) != tols or
                                  g.get("boundary_f_mode", "pooled") != mode or
                                  [(b["from"], b["to"]) for b in g.get("distance_bands", [])] != bands
                                  for g in groups):
        return None
    f_name = "pF@" if mode == "per_image" else "F@"  # per image as published / pooled over the split (ours)
    head = ["group"] + [f"{f_name}{t}px" for t in tols] + [
        f"mIoU {lo:g}-{hi:g}px" if hi is not None else f"mIoU {lo:g}px+" for lo, hi in bands]
    rows = [[g["label"]] + [_mean_sd_text(g["boundary_f"][t]) for t in tols]
            + [_mean_sd_text(b) for b in g.get("distance_bands", [])] for g in groups]
    return head, rows


BOUNDARY_NOTE = ("boundary F-score by tolerance (F@: pooled over the split, ours; pF@: per image, as published) and "
                 "mIoU by distance from ground-truth boundaries, mean ± sd over seeds, in points (no interval: eval "
                 "stores no per-image counts for them)")


def class_rows(result: dict) -> tuple[list[str], list[list[str]]]:
    groups = result["groups"]
    head = ["class"] + [f"({i + 1})" for i in range(len(groups))]
    rows = [[name] + [_pct(g["iou"][name]) for g in groups] for name in groups[0]["iou"]]
    return head, rows


def format_text(result: dict) -> str:
    def render(head, rows):
        widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
        line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
        return "\n".join([line(head)] + [line(r) for r in rows])

    boundary = boundary_rows(result)
    parts = [render(*table_rows(result)), method_note(result)]
    parts += [f"warning: {w}" for w in result.get("warnings", [])]
    if result["comparisons"]:
        parts += ["", TESTS_NOTE + ":", render(*tests_rows(result))]
    if boundary:
        parts += ["", BOUNDARY_NOTE + ":", render(*boundary)]
    parts += ["", "per-class IoU (mean over seeds):",
             "\n".join(f"  ({i + 1}) {g['label']}" for i, g in enumerate(result["groups"])),
             render(*class_rows(result))]
    return "\n".join(parts)


def format_markdown(result: dict) -> str:
    def render(head, rows):
        out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(head)))
               + "|"]
        out += ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in rows]
        return "\n".join(out)

    head, rows = table_rows(result)
    for r in rows:
        r[0] = f"`{r[0]}`"
    chead, crows = class_rows(result)
    legend = "\n".join(f"- ({i + 1}) `{g['label']}`" for i, g in enumerate(result["groups"]))
    boundary = boundary_rows(result)
    if boundary:
        for r in boundary[1]:
            r[0] = f"`{r[0]}`"
    extra = f"{BOUNDARY_NOTE[0].upper()}{BOUNDARY_NOTE[1:]}:\n\n{render(*boundary)}\n\n" if boundary else ""
    warnings = "".join(f"**Warning:** {w}.\n\n" for w in result.get("warnings", []))
    tests = ""
    if result["comparisons"]:
        thead, trows = tests_rows(result)
        for r in trows:
            r[0] = f"`{r[0]}`"
        tests = f"{TESTS_NOTE[0].upper()}{TESTS_NOTE[1:]}:\n\n{render(thead, trows)}\n\n"
    return (render(head, rows) + "\n\n"
            + method_note(result, markdown=True) + ".\n\n" + warnings + tests + extra +
            "Per-class IoU (mean over seeds):\n\n" + legend + "\n\n" + render(chead, crows) + "\n")
