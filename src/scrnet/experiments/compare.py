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
variance and an image-bootstrap variance (one image-weight vector per draw, shared by every run of both groups), and
a t quantile with Satterthwaite degrees of freedom. The verdict is "better" or "worse" when the 95% interval excludes
0, "no worse" when it lies above a margin the user stated, and "inconclusive" otherwise or with fewer than
``min_seeds`` (default 5) seeds. Fractions in 0..1, like ``scrnet eval``.
"""

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import ConfigError, config_from_dict, config_to_dict
from ..errors import ScrnetError
from ..evaluation.counts import PerImageCounts, counts_path
from ..evaluation.metrics import mean_ratio, miou_from
from ..overrides import flatten
from .intervals import MIN_SEEDS, Interval, difference_interval, image_weights, verdict

# Keys that do not change what a run trains or how it is scored: never part of a group or a label.
IGNORED_KEYS = ("data.root", "train.device", "train.num_workers", "train.log_interval", "train.checkpoint_interval",
                "train.keep_last", "train.max_nonfinite", "train.tensorboard", "train.dist_timeout_s",
                "train.cudnn_benchmark", "format_version")
SEED_KEY = "train.seed"
# compared with intervals (Boundary IoU when every run's counts hold it); key in the eval JSON -> column name
METRICS = {"miou": "mIoU", "mbiou": "BIoU*", "boundary_iou": "Boundary IoU"}
METHOD = ("paired t over seeds (Welch's t when unpaired) with an image-bootstrap variance term shared by every run, "
          "Satterthwaite degrees of freedom")


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
    if counts.confusion.shape[1] != len(record["class_names"]):
        raise CompareError(f"{npz}: counts for {counts.confusion.shape[1]} classes, but {json_path} names "
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
        out.update({k: fmt_value(v) for k, v in run.config.items() if k.startswith("eval.")})
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


def find_baseline(groups: list[Group], baseline: str | None) -> int:
    """Index of the baseline group: the first by default, else the group holding the run at that path, the group
    with that label, or the one group whose overrides include every ``key=value`` given (comma-separated)."""
    if baseline is None:
        return 0
    for i, g in enumerate(groups):
        if any(Path(r.path).resolve() == Path(baseline).resolve() for r in g.runs) or g.label == baseline:
            return i
    wanted = [part.strip() for part in baseline.split(",") if part.strip()]
    matches = [i for i, g in enumerate(groups)
               if wanted and all(w in {f"{k}={fmt_value(v)}" for k, v in g.overrides.items()} for w in wanted)]
    if len(matches) == 1:
        return matches[0]
    labels = "; ".join(g.label for g in groups)
    raise CompareError(f"--baseline {baseline!r} {'matches several groups' if matches else 'matches no run or group'}"
                       f" (groups: {labels})")


class RunStats:
    """A run's per-image counts as matrices for fast re-weighting: metric(weights over images)."""

    def __init__(self, confusion: np.ndarray, inter: np.ndarray | None = None, union: np.ndarray | None = None,
                 boundary_inter: np.ndarray | None = None, boundary_union: np.ndarray | None = None):
        """``confusion``: ``N x K x K`` per-image confusion matrices; ``inter``/``union``: ``N x K`` BIoU* counts;
        ``boundary_*``: ``N x K`` Boundary IoU counts (each pair optional)."""
        self.k = confusion.shape[1]
        self.cm = confusion.reshape(len(confusion), -1).astype(np.float64)  # N x K^2
        self.ratios = {name: (num.astype(np.float64), den.astype(np.float64))
                       for name, num, den in (("mbiou", inter, union), ("boundary_iou", boundary_inter, boundary_union))
                       if num is not None}
        self._draws: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    @classmethod
    def of(cls, run: Run) -> "RunStats":
        return cls.of_counts(run.counts)

    @classmethod
    def of_counts(cls, c: PerImageCounts) -> "RunStats":
        return cls(c.confusion, c.biou_inter, c.biou_union, c.boundary_inter, c.boundary_union)

    def has(self, name: str) -> bool:
        return name == "miou" or name in self.ratios

    def metric(self, name: str, weights: np.ndarray) -> np.ndarray:
        """``weights``: ``... x N`` image multiplicities (ones: the run's own value)."""
        if name == "miou":
            return miou_from((weights @ self.cm).reshape(*weights.shape[:-1], self.k, self.k))
        num, den = self.ratios[name]
        return mean_ratio(weights @ num, weights @ den)

    def scored_and_drawn(self, name: str, weights: np.ndarray) -> tuple[float, np.ndarray]:
        """The metric on the images as scored, and under each row of ``weights`` (kept for the same weights)."""
        cached = self._draws.get(name)
        if cached is None or cached[0] is not weights:
            cached = (weights, self.metric(name, weights))
            self._draws[name] = cached
        return float(self.metric(name, np.ones(self.cm.shape[0]))), cached[1]


def interval_between(mine: list[RunStats], theirs: list[RunStats], metric: str, weights: np.ndarray,
                     paired: bool) -> Interval:
    """The 95% interval of mean(mine) - mean(theirs) on ``metric`` with the image bootstrap ``weights`` (one row a
    draw, shared by every run); ``paired``: ``mine[i]`` and ``theirs[i]`` share a seed."""
    a = [st.scored_and_drawn(metric, weights) for st in mine]
    b = [st.scored_and_drawn(metric, weights) for st in theirs]
    return difference_interval(np.array([v for v, _ in a]), np.array([v for v, _ in b]), np.stack([d for _, d in a]),
                               np.stack([d for _, d in b]), paired, weights.shape[1])


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
    if tolerances and tolerances[0] and all(t == tolerances[0] for t in tolerances):
        out["boundary_f"] = {t: _mean_sd([r.record["boundary_f"][t]["mean"] for r in g.runs])
                             for t in sorted(tolerances[0], key=float)}
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


def compare(runs: list[Run], baseline: str | None = None, samples: int = 2000, seed: int = 0,
            min_seeds: int = MIN_SEEDS, margin: float | None = None, unpaired: bool = False) -> dict:
    """The ``scrnet compare`` result: ``{"groups", "comparisons", "baseline", "method", ...}``. ``margin``: the
    difference (a fraction, like the metrics) below which "no worse" may be said; ``min_seeds``: fewest seeds for
    any verdict but "inconclusive"; ``unpaired``: compare groups without pairing runs by seed."""
    if not runs:
        raise CompareError("no runs to compare")
    if min_seeds < 2:
        raise CompareError(f"--min-seeds {min_seeds}: a verdict needs the seed-to-seed variance, so at least 2")
    if margin is not None and not margin >= 0:
        raise CompareError(f"--margin {margin}: a margin is a non-negative number of points")
    check_comparable(runs)
    groups = group_runs(runs)
    b = find_baseline(groups, baseline)
    base = groups[b]
    images = len(runs[0].counts.images)
    weights = image_weights(images, samples, np.random.default_rng(seed))
    stats = {id(r): RunStats.of(r) for r in runs}
    metrics = [m for m in METRICS if all(st.has(m) for st in stats.values())]

    result = {"baseline": base.label, "groups": [summarise_group(g) for g in groups], "comparisons": [],
              "method": METHOD, "min_seeds": min_seeds, "margin": margin, "metrics": metrics,
              "bootstrap": {"samples": samples, "seed": seed, "images": images}}
    for i, g in enumerate(groups):
        if i == b:
            continue
        mine, theirs, paired = pairing(g, base, unpaired)
        for metric in metrics:
            interval = interval_between([stats[id(r)] for r in mine], [stats[id(r)] for r in theirs], metric, weights,
                                        paired)
            word, why = verdict(interval, min_seeds, margin)
            result["comparisons"].append({
                "group": g.label, "baseline": base.label, "metric": metric, **interval.to_json(),
                "verdict": word, "why": why, "too_few_seeds": interval.seeds < min_seeds,
                "pairing": "paired" if paired else "unpaired",
                "group_seeds": [r.seed for r in mine], "baseline_seeds": [r.seed for r in theirs],
                "paired_seeds": [r.seed for r in mine] if paired else []})
    return result


def _pct(v, signed: bool = False) -> str:
    if v is None:
        return "n/a"
    return f"{100 * v:+.2f}" if signed else f"{100 * v:.2f}"


def _mean_sd_text(block: dict | None) -> str:
    if not block or block["mean"] is None:
        return "n/a"
    return _pct(block["mean"]) + ("" if block["sd"] is None else f" ± {_pct(block['sd'])}")


def verdict_text(c: dict) -> str:
    """A comparison's verdict as the tables print it: "inconclusive (3 seeds)" when the seeds were too few."""
    if c["too_few_seeds"]:
        return f"inconclusive ({c['seeds']} seed{'s' if c['seeds'] != 1 else ''})"
    return c["verdict"]


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
        by_group.setdefault(c["group"], {})[c["metric"]] = c
    compared = result["metrics"]
    head = ["group", "seeds"]
    for metric in compared:
        name = METRICS[metric]
        head += [name] + (["mIoU by seed"] if metric == "miou" else []) + [f"Δ {name} [95% CI]", "verdict"]
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
                row += ["baseline", ""]
            else:
                row += [f"{_pct(c['diff'], True)} [{_pct(c['low'], True)}, {_pct(c['high'], True)}]", verdict_text(c)]
        if mean_only:
            row.append(_mean_sd_text(g["boundary_iou"]))
        rows.append(row)
    return head, rows


def method_note(result: dict, markdown: bool = False) -> str:
    """The sentence under every table: what the numbers are and how the intervals and verdicts were made."""
    label = f"`{result['baseline']}`" if markdown else result["baseline"]
    b = result["bootstrap"]
    margin = ("" if result.get("margin") is None else
              f"; \"no worse\": the interval lies above -{100 * result['margin']:g} points")
    return (f"mean ± sd over seeds, in points; Δ: against the baseline ({label}), 95% interval: "
            f"{result['method']} ({b['samples']} image draws, bootstrap seed {b['seed']}); a verdict needs "
            f"{result['min_seeds']} seeds{margin}, otherwise \"inconclusive\"")


def boundary_rows(result: dict) -> tuple[list[str], list[list[str]]] | None:
    """Boundary F per tolerance and mIoU per distance band, mean ± sd over seeds, when every group has the same
    ones (no interval: their per-image counts are not stored)."""
    groups = result["groups"]
    first = groups[0]
    tols, bands = list(first.get("boundary_f", {})), [(b["from"], b["to"]) for b in first.get("distance_bands", [])]
    if not (tols or bands) or any(list(g.get("boundary_f", {})) != tols or
                                  [(b["from"], b["to"]) for b in g.get("distance_bands", [])] != bands
                                  for g in groups):
        return None
    head = ["group"] + [f"F@{t}px" for t in tols] + [
        f"mIoU {lo:g}-{hi:g}px" if hi is not None else f"mIoU {lo:g}px+" for lo, hi in bands]
    rows = [[g["label"]] + [_mean_sd_text(g["boundary_f"][t]) for t in tols]
            + [_mean_sd_text(b) for b in g.get("distance_bands", [])] for g in groups]
    return head, rows


BOUNDARY_NOTE = ("boundary F-score by tolerance and mIoU by distance from ground-truth boundaries, mean ± sd over "
                 "seeds, in points (no interval: eval stores no per-image counts for them)")


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
    return (render(head, rows) + "\n\n"
            + method_note(result, markdown=True) + ".\n\n" + extra +
            "Per-class IoU (mean over seeds):\n\n" + legend + "\n\n" + render(chead, crows) + "\n")


def write_outputs(result: dict, json_path: str | Path | None = None, markdown_path: str | Path | None = None,
                  plot_path: str | Path | None = None) -> None:
    """Write a :func:`compare` result as JSON, as a Markdown table and as a forest plot (``forest.forest_plot``),
    each only where a path is given."""
    for path, text in ((json_path, json.dumps(result, indent=2) + "\n"),
                       (markdown_path, format_markdown(result))):
        if path:
            Path(path).write_text(text)
    if plot_path:
        from .forest import forest_plot

        forest_plot(result, plot_path)
