"""``scrnet compare``: an ablation table from evaluations a user already made, with intervals that hold both
seed-to-seed and image-to-image variation.

Inputs are eval JSON files written by ``scrnet eval --json`` (each with its per-image counts beside it, same name
with ``.npz``) or training work dirs holding one as ``eval.json`` (what ``scrnet study`` writes). Runs are grouped by
their resolved config without ``train.seed`` (and without keys that do not change what is trained: paths, logging,
workers, device); a group's label is the set of keys whose values differ between the groups, so nothing is typed by
hand. Runs that were not scored the same way (data set, split, classes, images, eval protocol) are refused.

Each group is compared with the baseline group by a hierarchical bootstrap: one draw resamples the seeds (paired:
the same seed of both groups when both have it), then, for each drawn seed, the validation images (the same images
for both groups' runs of that seed), rebuilds each run's confusion matrix (and boundary counts) from the per-image
counts, and takes the mean over the drawn seeds of the group's metric minus the baseline's. The 2.5 and 97.5
percentiles of the draws give the 95% interval; the verdict is "better" when it lies above 0, "worse" below, and
"within noise" otherwise. Fractions in 0..1, like ``scrnet eval``.
"""

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import ConfigError, config_from_dict, config_to_dict
from ..evaluation.counts import PerImageCounts, counts_path
from ..overrides import flatten

# Keys that do not change what a run trains or how it is scored: never part of a group or a label.
IGNORED_KEYS = ("data.root", "train.device", "train.num_workers", "train.log_interval", "train.checkpoint_interval",
                "train.keep_last", "train.max_nonfinite", "train.tensorboard", "train.dist_timeout_s",
                "train.cudnn_benchmark", "format_version")
SEED_KEY = "train.seed"
METRICS = {"miou": "mIoU", "mbiou": "BIoU*"}  # compared with intervals; key in the eval JSON -> column name


class CompareError(ValueError):
    """Runs that cannot be compared (one line naming the runs and what differs)."""


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


def miou_from(cm: np.ndarray) -> np.ndarray:
    """Mean IoU over the classes present (union > 0) of confusion matrices ``... x K x K``."""
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    union = cm.sum(-1) + cm.sum(-2) - tp
    return mean_ratio(tp, union)


def mean_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Mean over the last axis of ``num / den`` where ``den > 0`` (NaN where no entry has ``den > 0``): a mean IoU
    over the classes present."""
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)
    valid = den > 0
    total = np.where(valid, ratio, 0.0).sum(-1)
    count = valid.sum(-1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


class RunStats:
    """A run's per-image counts as matrices for fast re-weighting: metric(weights over images)."""

    def __init__(self, run: Run):
        c = run.counts
        self.k = c.confusion.shape[1]
        self.cm = c.confusion.reshape(len(c.images), -1).astype(np.float64)  # N x K^2
        self.inter = c.biou_inter.astype(np.float64)
        self.union = c.biou_union.astype(np.float64)

    def metric(self, name: str, weights: np.ndarray) -> np.ndarray:
        """``weights``: ``... x N`` image multiplicities (ones: the run's own value)."""
        if name == "miou":
            return miou_from((weights @ self.cm).reshape(*weights.shape[:-1], self.k, self.k))
        return mean_ratio(weights @ self.inter, weights @ self.union)


def bootstrap_difference(group: list[RunStats], base: list[RunStats], metric: str, samples: int,
                         rng: np.random.Generator, paired: bool) -> np.ndarray:
    """``samples`` draws of mean(group metric) - mean(baseline metric) under the hierarchical bootstrap.
    ``paired``: ``group[i]`` and ``base[i]`` share a seed, and one draw of seeds and images serves both."""
    n = group[0].cm.shape[0]
    uniform = np.full(n, 1.0 / n)

    def draw(stats: list[RunStats], seeds: np.ndarray, weights: np.ndarray) -> np.ndarray:
        values = np.empty(seeds.shape)
        for s, st in enumerate(stats):
            hit = seeds == s
            if hit.any():
                values[hit] = st.metric(metric, weights[hit])
        return np.nanmean(values, axis=1)

    s_a = len(group)
    seeds_a = rng.integers(0, s_a, size=(samples, s_a))
    w_a = rng.multinomial(n, uniform, size=(samples, s_a)).astype(np.float64)
    if paired:
        return draw(group, seeds_a, w_a) - draw(base, seeds_a, w_a)
    s_b = len(base)
    seeds_b = rng.integers(0, s_b, size=(samples, s_b))
    w_b = rng.multinomial(n, uniform, size=(samples, s_b)).astype(np.float64)
    return draw(group, seeds_a, w_a) - draw(base, seeds_b, w_b)


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
    out["iou"] = {c: _mean_sd([r.record["iou"].get(c) for r in g.runs])["mean"] for c in names}
    return out


def compare(runs: list[Run], baseline: str | None = None, samples: int = 2000, seed: int = 0) -> dict:
    """The ``scrnet compare`` result: ``{"groups": [...], "comparisons": [...], "baseline", "bootstrap"}``."""
    if not runs:
        raise CompareError("no runs to compare")
    check_comparable(runs)
    groups = group_runs(runs)
    b = find_baseline(groups, baseline)
    base = groups[b]
    result = {"baseline": base.label, "groups": [summarise_group(g) for g in groups], "comparisons": [],
              "bootstrap": {"samples": samples, "seed": seed,
                            "method": "hierarchical: seeds (paired where both groups have the seed), then images"}}
    for i, g in enumerate(groups):
        if i == b:
            continue
        base_seeds = {r.seed: r for r in base.runs}
        common = [r.seed for r in g.runs if r.seed in base_seeds]
        if common:
            mine = [RunStats(r) for r in g.runs if r.seed in base_seeds]
            theirs = [RunStats(base_seeds[r.seed]) for r in g.runs if r.seed in base_seeds]
        else:
            mine, theirs = [RunStats(r) for r in g.runs], [RunStats(r) for r in base.runs]
        ones = np.ones(mine[0].cm.shape[0])
        for metric in METRICS:
            rng = np.random.default_rng([seed, i, list(METRICS).index(metric)])
            draws = bootstrap_difference(mine, theirs, metric, samples, rng, paired=bool(common))
            diff = float(np.mean([m.metric(metric, ones) for m in mine]) -
                         np.mean([t.metric(metric, ones) for t in theirs]))
            low, high = (float(np.nanpercentile(draws, q)) for q in (2.5, 97.5))
            verdict = "better" if low > 0 else "worse" if high < 0 else "within noise"
            result["comparisons"].append({
                "group": g.label, "baseline": base.label, "metric": metric, "diff": diff, "low": low, "high": high,
                "verdict": verdict, "paired_seeds": common,
                "seeds": len(mine) if common else [len(mine), len(theirs)]})
    return result


def _pct(v, signed: bool = False) -> str:
    if v is None:
        return "n/a"
    return f"{100 * v:+.2f}" if signed else f"{100 * v:.2f}"


def _mean_sd_text(block: dict | None) -> str:
    if not block or block["mean"] is None:
        return "n/a"
    return _pct(block["mean"]) + ("" if block["sd"] is None else f" ± {_pct(block['sd'])}")


def table_rows(result: dict) -> tuple[list[str], list[list[str]]]:
    """The main table: one row per group; the baseline's difference columns read 'baseline'."""
    by_group = {}
    for c in result["comparisons"]:
        by_group.setdefault(c["group"], {})[c["metric"]] = c
    has_published = all("boundary_iou" in g for g in result["groups"])
    head = ["group", "seeds", "mIoU", "mIoU by seed", "Δ mIoU [95% CI]", "verdict", "BIoU*", "Δ BIoU* [95% CI]",
            "verdict"]
    if has_published:
        head.append("Boundary IoU")
    rows = []
    for g in result["groups"]:
        row = [g["label"], ",".join(fmt_value(s) for s in g["seeds"]), _mean_sd_text(g["miou"]),
               " / ".join(_pct(r["miou"]) for r in g["per_seed"])]
        for metric in METRICS:
            c = by_group.get(g["label"], {}).get(metric)
            if metric != "miou":
                row.append(_mean_sd_text(g[metric]))
            if c is None:
                row += ["baseline", ""]
            else:
                row += [f"{_pct(c['diff'], True)} [{_pct(c['low'], True)}, {_pct(c['high'], True)}]", c["verdict"]]
        if has_published:
            row.append(_mean_sd_text(g["boundary_iou"]))
        rows.append(row)
    return head, rows


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

    b = result["bootstrap"]
    parts = [render(*table_rows(result)),
             f"mean ± sd over seeds, in points; Δ: against the baseline ({result['baseline']}), 95% interval of a "
             f"{b['method']} bootstrap ({b['samples']} draws, --bootstrap-seed {b['seed']})",
             "", "per-class IoU (mean over seeds):",
             "\n".join(f"  ({i + 1}) {g['label']}" for i, g in enumerate(result["groups"])),
             render(*class_rows(result))]
    return "\n".join(parts)


def format_markdown(result: dict) -> str:
    def render(head, rows):
        out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(head)))
               + "|"]
        out += ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in rows]
        return "\n".join(out)

    b = result["bootstrap"]
    head, rows = table_rows(result)
    for r in rows:
        r[0] = f"`{r[0]}`"
    chead, crows = class_rows(result)
    legend = "\n".join(f"- ({i + 1}) `{g['label']}`" for i, g in enumerate(result["groups"]))
    return (render(head, rows) + "\n\n"
            f"mean ± sd over seeds, in points; Δ: against the baseline (`{result['baseline']}`), 95% interval of a "
            f"{b['method']} bootstrap ({b['samples']} draws, bootstrap seed {b['seed']}).\n\n"
            "Per-class IoU (mean over seeds):\n\n" + legend + "\n\n" + render(chead, crows) + "\n")
