"""A study's plan, fixed before its first run: which comparisons are asked, on which metrics, with how many seeds,
at which looks, against which margin; and the record of the looks taken.

The plan is a YAML file (``plan.yaml``; its one reader and writer is this module)::

    comparisons:                 # pairs of groups, each named as compare names groups (a label or key=value pairs)
      - [model.srm.mode=neighbor, model.srm.mode=bilinear]
      - [model.srm.mode=dysample, model.srm.mode=bilinear]
    metrics: [miou]              # miou, mbiou (BIoU*), boundary_iou; default [miou]
    seeds: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    looks: [5, 10]               # seeds at each look (default: one look at all seeds)
    margin: 0.5                  # points; "equivalent" / "no worse" need it (default: none)
    alpha: 0.05                  # family-wise error rate (default 0.05)

``scrnet compare --plan`` tests the family ``comparisons x metrics`` with Holm's adjustment, at the level the
group-sequential boundary gives the look the runs are at (Lan-DeMets spending with O'Brien-Fleming's shape:
``alpha(t) = 2 - 2 Phi(z_(1 - alpha/2) / sqrt(t))`` spent by information fraction ``t = seeds / final seeds``; for
looks at 5 and 10 seeds: p < 0.0056 at 5, p < 0.046 at 10). Comparisons outside the plan are "exploratory" with no
verdict. The plan is data: it names groups and numbers, never a path to read or write.

The looks record (``looks.jsonl``, beside the study's cells) is one JSON line per compare of the study: the seeds
it saw, and whether the plan declared that look. A look at more seeds than an earlier, undeclared look is warned
about: adding seeds after looking raises the chance of a false verdict above the stated level.
"""

import functools
import json
import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import yaml

from ..errors import ConfigError
from .intervals import ALPHA, normal_cdf, t_quantile

PLAN_FILE = "plan.yaml"
LOOKS_FILE = "looks.jsonl"
PLAN_METRICS = ("miou", "mbiou", "boundary_iou")
PLAN_KEYS = ("comparisons", "metrics", "seeds", "looks", "margin", "alpha")


@dataclass
class Plan:
    comparisons: list[tuple[str, str]]  # (group, baseline), each a compare group name
    seeds: list[int]
    metrics: list[str] = field(default_factory=lambda: ["miou"])
    looks: list[int] = field(default_factory=list)  # seeds at each look; [] = one look at len(seeds)
    margin: float | None = None  # points
    alpha: float = ALPHA

    def __post_init__(self):
        self.looks = list(self.looks) or [len(self.seeds)]

    @property
    def family_size(self) -> int:
        return len(self.comparisons) * len(self.metrics)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["comparisons"] = [list(c) for c in self.comparisons]
        return out


def plan_from_dict(data, source: str) -> Plan:
    """A :class:`Plan` from parsed YAML, every field checked; a :class:`ConfigError` naming ``source`` and the key."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a plan is a mapping of {', '.join(PLAN_KEYS)}")
    unknown = sorted(set(data) - set(PLAN_KEYS))
    if unknown:
        raise ConfigError(f"{source}: unknown plan key {unknown[0]!r} (known: {', '.join(PLAN_KEYS)})")
    pairs = data.get("comparisons")
    if not isinstance(pairs, list) or not pairs or not all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) and x for x in p) for p in pairs):
        raise ConfigError(f"{source}: comparisons must be a non-empty list of [group, baseline] pairs of group names")
    seeds = data.get("seeds")
    if not isinstance(seeds, list) or len(seeds) < 2 or not all(isinstance(x, int) for x in seeds) \
            or len(set(seeds)) != len(seeds):
        raise ConfigError(f"{source}: seeds must be a list of at least 2 distinct integers, got {seeds!r}")
    metrics = data.get("metrics", ["miou"])
    if not isinstance(metrics, list) or not metrics or any(m not in PLAN_METRICS for m in metrics):
        raise ConfigError(f"{source}: metrics must be a list of {', '.join(PLAN_METRICS)}, got {metrics!r}")
    looks = data.get("looks", [len(seeds)])
    if not isinstance(looks, list) or not looks or not all(isinstance(x, int) and x >= 2 for x in looks) \
            or looks != sorted(set(looks)) or looks[-1] != len(seeds):
        raise ConfigError(f"{source}: looks must be increasing seed counts of at least 2 ending at the plan's "
                          f"{len(seeds)} seeds, got {looks!r}")
    margin = data.get("margin")
    if margin is not None and (isinstance(margin, bool) or not isinstance(margin, (int, float)) or not margin > 0):
        raise ConfigError(f"{source}: margin must be a positive number of points, got {margin!r}")
    alpha = data.get("alpha", ALPHA)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 0.5:
        raise ConfigError(f"{source}: alpha must be between 0 and 0.5, got {alpha!r}")
    return Plan([tuple(p) for p in pairs], list(seeds), list(metrics), list(looks),
                None if margin is None else float(margin), float(alpha))


def read_plan(path: str | Path) -> Plan:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"plan not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: not a readable plan ({str(exc).splitlines()[0]})") from None
    return plan_from_dict(data, str(path))


def plan_text(plan: Plan) -> str:
    return yaml.safe_dump(plan.to_dict(), sort_keys=False, default_flow_style=None)


# ------------------------------------------------------------------------------------------- group-sequential looks

def obrien_fleming_spent(t: float, alpha: float) -> float:
    """Lan-DeMets O'Brien-Fleming-shaped spending: the two-sided error spent by information fraction ``t``."""
    if t <= 0:
        return 0.0
    z = t_quantile(1 - alpha / 2, math.inf)
    return min(alpha, 2 - 2 * normal_cdf(z / math.sqrt(t)))


def _crossing(density: np.ndarray, grid: np.ndarray, step: float, sd: float, bound: float) -> float:
    """P(|W + X| >= bound) with W of (sub-)density ``density`` on ``grid`` and X ~ N(0, sd^2)."""
    from math import erfc, sqrt

    upper = np.array([0.5 * erfc((bound - w) / (sd * sqrt(2))) for w in grid])
    lower = np.array([0.5 * erfc((bound + w) / (sd * sqrt(2))) for w in grid])
    return float(np.sum(density * (upper + lower)) * step)


def sequential_levels(looks: list[int], alpha: float = ALPHA, points: int = 801) -> list[float]:
    """The nominal two-sided p-value each look must beat (see :func:`_levels`; computed once per design)."""
    return list(_levels(tuple(looks), alpha, points))


@functools.lru_cache(maxsize=64)
def _levels(looks: tuple[int, ...], alpha: float, points: int) -> tuple[float, ...]:
    """The nominal two-sided p-value each look must beat so that the chance of a false verdict at any look is
    ``alpha`` (normal approximation, looks at information fractions ``looks / looks[-1]``). The boundaries are found
    look by look: the sub-density of the score process on the continuation region is carried forward on a grid
    (``points`` per look), and each look's bound is set so its crossing probability is the error spent since the
    previous look."""
    fractions = [n / looks[-1] for n in looks]
    levels: list[float] = []
    spent_before = 0.0
    grid = density = None
    step = 0.0
    previous_t = 0.0
    for t in fractions:
        spend = obrien_fleming_spent(t, alpha) - spent_before
        if grid is None:  # the first look: W(t) ~ N(0, t)
            z = t_quantile(1 - spend / 2, math.inf)
            bound = z * math.sqrt(t)
        else:
            sd = math.sqrt(t - previous_t)
            low, high = 0.0, 12 * math.sqrt(t)
            for _ in range(60):
                mid = (low + high) / 2
                low, high = (mid, high) if _crossing(density, grid, step, sd, mid) > spend else (low, mid)
            bound = (low + high) / 2
            z = bound / math.sqrt(t)
        levels.append(float(math.erfc(z / math.sqrt(2))))
        # the sub-density of W(t) on |w| < bound, for the next look
        new_grid = np.linspace(-bound, bound, points)
        new_step = new_grid[1] - new_grid[0]
        if grid is None:
            new_density = np.exp(-new_grid ** 2 / (2 * t)) / math.sqrt(2 * math.pi * t)
        else:
            sd = math.sqrt(t - previous_t)
            kernel = np.exp(-(new_grid[:, None] - grid[None, :]) ** 2 / (2 * sd * sd)) / (sd * math.sqrt(2 * math.pi))
            new_density = kernel @ density * step
        grid, density, step, previous_t = new_grid, new_density, new_step, t
        spent_before += spend
    return tuple(levels)


def look_index(plan: Plan, seeds: int) -> int | None:
    """Which declared look ``seeds`` is (0-based), or ``None`` between or beyond the declared looks."""
    return plan.looks.index(seeds) if seeds in plan.looks else None


# ------------------------------------------------------------------------------------------------ the looks record

@dataclass
class Look:
    seeds: int
    declared: bool
    time: str


def read_looks(path: Path) -> list[Look]:
    """The looks record. A file that holds anything but look lines is not one scrnet wrote: refused (a
    :class:`ConfigError` naming it), never appended to."""
    if not path.is_file():
        if path.exists() or path.is_symlink():
            raise ConfigError(f"{path}: not a looks record (not a plain file)")
        return []
    out = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not a readable looks record ({exc})") from None
    for number, line in enumerate(lines, 1):
        try:
            item = json.loads(line)
            out.append(Look(int(item["seeds"]), bool(item["declared"]), str(item.get("time", ""))))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ConfigError(f"{path}: line {number} is not a look scrnet recorded; give --looks a file of its "
                              f"own (scrnet study keeps WORK_DIR/looks.jsonl)") from None
    return out


def undeclared_before(looks: list[Look], seeds: int) -> list[int]:
    """Seed counts of earlier undeclared looks at fewer seeds than ``seeds``: seeds were added after them."""
    return sorted({look.seeds for look in looks if not look.declared and look.seeds < seeds})


def record_look(path: Path, seeds: int, declared: bool) -> None:
    """Append this look to the record (one JSON line; the file is the study's, written only by compare)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps({"seeds": seeds, "declared": declared,
                            "time": datetime.now(timezone.utc).isoformat(timespec="seconds")}) + "\n")
