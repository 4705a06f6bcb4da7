"""``scrnet study``: a grid of ordinary training runs (variants x seeds), each scored, then ``scrnet compare``.

A cell is one ``scrnet train CONFIG --work-dir CELL --resume [key=value ...]`` followed by ``scrnet eval`` of its
final checkpoint (not ``best.pth``, which was picked on the split being scored) into ``CELL/eval.json``. A cell whose
``eval.json`` holds the planned config is skipped, and a cell killed mid-training (its ``config.yaml`` the planned
one) resumes from its newest checkpoint, so a killed study goes on where it stopped when run again. A cell made with
another config (an edited variant file, another ``max_iters``) is stale: the study refuses before running anything,
naming the cell and the keys, or with ``rerun_stale`` moves it to ``WORK_DIR/stale-N/CELL`` and trains it again.
``--print-commands`` prints one shell line per cell instead of running them, for a SLURM array or torchrun jobs:
there is no scheduler here.

Variants come from ``--vary KEY=V1,V2`` (each key one axis of the grid) and ``--variants FILE...`` (one axis whose
values are YAML files of ``dotted.key: value`` overrides, named by their stem, as in ``configs/ablations/``).
"""

import itertools
import json
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..checkpoint_io import checkpoint_path
from ..config import Config, ConfigError, config_from_dict, config_to_dict, load_config
from ..errors import ScrnetError
from ..overrides import flatten
from .compare import IGNORED_KEYS, fmt_value
from .plan import PLAN_FILE, Plan, plan_text, read_plan


class StudyError(ScrnetError, RuntimeError):
    """A cell whose training or evaluation failed (its own output says why); finished cells are kept."""


@dataclass
class Cell:
    name: str  # relative directory: <variant>/seed<S>
    overrides: list[str] = field(default_factory=list)  # the variant's key=value overrides, then train.seed
    seed: int = 0


def parse_vary(text: str) -> tuple[str, list[str]]:
    key, sep, values = text.partition("=")
    if not sep or not key or not values:
        raise ConfigError(f"--vary {text!r}: expected KEY=V1,V2,...")
    if "[" in values or "{" in values:
        raise ConfigError(f"--vary {text!r}: list or dict values cannot be varied on the command line; "
                          f"write one YAML file per value and pass them with --variants")
    return key.strip(), [v.strip() for v in values.split(",") if v.strip()]


def read_variant(path: str | Path) -> tuple[str, list[str]]:
    """A variant file: a YAML mapping of dotted keys (or nested sections) to values -> (stem, key=value list)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"variant file not found: {path}") from None
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read variant file {path}: {str(exc).splitlines()[0]}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"variant file {path}: expected a mapping of config keys to values")
    return path.stem, [f"{k}={fmt_value(v)}" for k, v in flatten(data).items()]


def expand(vary: list[str], variant_files: list[str], seeds: list[int]) -> list[Cell]:
    """The grid, seed-major (every variant of seed 0 first), so a partly run study is already paired by seed."""
    axes: list[list[tuple[str, list[str]]]] = []
    for text in vary:
        key, values = parse_vary(text)
        axes.append([(f"{key}={v}", [f"{key}={v}"]) for v in values])
    if variant_files:
        variants = [read_variant(p) for p in variant_files]
        stems = [s for s, _ in variants]
        if len(set(stems)) != len(stems):
            raise ConfigError(f"--variants: two files share a name ({', '.join(stems)}): cells are named by it")
        axes.append(variants)
    if not axes:
        raise ConfigError("nothing to vary: give --vary KEY=V1,V2 and/or --variants FILE...")
    if not seeds:
        raise ConfigError("--seeds: give at least one seed")
    cells = []
    for seed in seeds:
        for combo in itertools.product(*axes):
            name = "__".join(label.replace("/", "_") for label, _ in combo)
            overrides = [o for _, ovs in combo for o in ovs]
            cells.append(Cell(f"{name}/seed{seed}", overrides + [f"train.seed={seed}"], seed))
    return cells


def cell_commands(config: str, cell: Cell, work_dir: Path, common: list[str]) -> tuple[list[str], list[str], Config]:
    """The ``scrnet train`` and ``scrnet eval`` argument lists of one cell (without the program name), and the
    config they train."""
    cfg = load_config(config, common + cell.overrides)
    cell_dir = work_dir / cell.name
    final = checkpoint_path(cell_dir, cfg.train.max_iters)
    train = ["train", str(config), "--work-dir", str(cell_dir), "--resume"] + common + cell.overrides
    evaluate = ["eval", str(final), "--json", str(cell_dir / "eval.json")]
    return train, evaluate, cfg


def _comparable(cfg: Config) -> dict:
    """The flattened config without the keys that change neither what is trained nor how it is scored."""
    return {k: fmt_value(v) for k, v in flatten(config_to_dict(cfg)).items() if k not in IGNORED_KEYS}


def stored_config(cell_dir: Path) -> tuple[Path, Config] | None:
    """The config a cell was made with: its ``eval.json``'s, else the ``config.yaml`` its training wrote; None for
    a cell not started. A file that does not read is a ConfigError naming it."""
    scored, trained = cell_dir / "eval.json", cell_dir / "config.yaml"
    try:
        if scored.is_file():
            return scored, config_from_dict(json.loads(scored.read_text())["config"], str(scored))
        if trained.is_file():
            return trained, load_config(trained)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{scored if scored.is_file() else trained}: cannot read the cell's config ({exc}); "
                          f"move the cell away to run it again") from None
    return None


def stale_keys(planned: Config, cell_dir: Path) -> tuple[Path, list[str]] | None:
    """``(file, ["key: stored -> planned", ...])`` when the cell was made with another config, else None."""
    found = stored_config(cell_dir)
    if found is None:
        return None
    path, stored = found
    a, b = _comparable(stored), _comparable(planned)
    diff = [f"{k}: {a.get(k, '(absent)')} -> {b.get(k, '(absent)')}" for k in sorted(set(a) | set(b))
            if a.get(k) != b.get(k)]
    return (path, diff) if diff else None


def move_aside(work_dir: Path, cell: Cell) -> Path:
    """Move a stale cell to ``WORK_DIR/stale-N/CELL`` (the first N free), keeping everything in it."""
    n = 1
    while (work_dir / f"stale-{n}" / cell.name).exists():
        n += 1
    target = work_dir / f"stale-{n}" / cell.name
    target.parent.mkdir(parents=True, exist_ok=True)
    (work_dir / cell.name).rename(target)
    return target


def shell_line(train: list[str], evaluate: list[str]) -> str:
    return shlex.join(["scrnet"] + train) + " && " + shlex.join(["scrnet"] + evaluate)


def fix_plan(work_dir: str | Path, plan: Plan | None, seeds: list[int]) -> Plan | None:
    """The study's plan, fixed in ``WORK_DIR/plan.yaml`` before its first run: ``plan`` is written there when the
    folder holds none, and must equal the one it holds otherwise; without ``plan`` the folder's own (if any) applies.
    The study's seeds must be among the plan's."""
    path = Path(work_dir) / PLAN_FILE
    held = read_plan(path) if path.is_file() else None
    if plan is not None and held is not None and plan.to_dict() != held.to_dict():
        changed = [k for k in plan.to_dict() if plan.to_dict()[k] != held.to_dict()[k]]
        raise ConfigError(f"{path} fixes this study's plan and the plan given differs in {', '.join(changed)}: a "
                          f"plan is fixed before the first run; start a new study (another --work-dir) for a new plan")
    plan = plan or held
    if plan is not None:
        outside = [s for s in seeds if s not in plan.seeds]
        if outside:
            raise ConfigError(f"--seeds {' '.join(map(str, outside))}: not in the plan's seeds "
                              f"({', '.join(map(str, plan.seeds))}, {path})")
        if held is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(plan_text(plan), encoding="utf-8")
    return plan


def run_study(config: str, vary: list[str], variant_files: list[str], seeds: list[int], work_dir: str | Path,
              common: list[str] | None = None, print_commands: bool = False, runner=None,
              rerun_stale: bool = False) -> list[Path]:
    """Run (or, with ``print_commands``, print) every cell; returns the cell dirs. ``runner(argv)`` runs one scrnet
    command (default: a subprocess of this Python) and returns its exit code. Stale cells (made with another
    config) are refused before anything runs, or with ``rerun_stale`` moved aside and run again."""
    common = list(common or [])
    work_dir = Path(work_dir)
    if not Path(config).is_file():
        raise ConfigError(f"config file not found: {config}")
    cells = expand(vary, variant_files, seeds)
    plans = [(cell, *cell_commands(config, cell, work_dir, common)) for cell in cells]  # every config checked first
    if print_commands:
        for _, train, evaluate, _ in plans:
            print(shell_line(train, evaluate))
        return [work_dir / cell.name for cell in cells]
    foreign = [work_dir / cell.name for cell in cells if (work_dir / cell.name).is_dir()
               and any((work_dir / cell.name).iterdir()) and stored_config(work_dir / cell.name) is None]
    if foreign:
        raise StudyError(f"{foreign[0]} holds files but no run of scrnet (no config.yaml or eval.json); a study "
                         f"writes its cells only into folders it made: choose another work dir, or move it away")
    stale = [(cell, found) for cell, _, _, cfg in plans if (found := stale_keys(cfg, work_dir / cell.name))]
    if stale and not rerun_stale:
        cell, (path, diff) = stale[0]
        more = f" (and {len(stale) - 1} more cell{'s' if len(stale) > 2 else ''})" if len(stale) > 1 else ""
        raise ConfigError(f"cell {work_dir / cell.name} was made with another config than planned ({path}: "
                          f"{'; '.join(diff[:4])}{'; ...' if len(diff) > 4 else ''}){more}; run with --rerun-stale "
                          f"to move stale cells aside and train them again")
    for cell, _ in stale:
        print(f"{cell.name}: stale, moved to {move_aside(work_dir, cell)}")
    runner = runner or (lambda argv: subprocess.call([sys.executable, "-m", "scrnet"] + argv))
    for k, (cell, train, evaluate, _) in enumerate(plans, 1):
        cell_dir = work_dir / cell.name
        if (cell_dir / "eval.json").is_file():
            print(f"[{k}/{len(plans)}] {cell.name}: done already ({cell_dir / 'eval.json'})")
            continue
        print(f"[{k}/{len(plans)}] {cell.name}: {shell_line(train, evaluate)}", flush=True)
        start = time.perf_counter()
        for argv in (train, evaluate):
            code = runner(argv)
            if code != 0:
                raise StudyError(f"cell {cell.name}: scrnet {argv[0]} exited with {code}; fix it and run the study "
                                   f"again (finished cells are kept)")
        print(f"[{k}/{len(plans)}] {cell.name}: {time.perf_counter() - start:.0f} s", flush=True)
    return [work_dir / cell.name for cell in cells]


@dataclass
class StudyResult:
    """What :func:`study` ran and wrote: the cells, and (unless only printing commands) the compare result and its
    files in the work dir."""
    cells: list[Path]
    compare: dict | None = None
    files: list[Path] = field(default_factory=list)
    plot_skipped: bool = False  # a plot was asked for but there is one group only


def study(config: str, vary: list[str], variant_files: list[str], seeds: list[int], work_dir: str | Path,
          common: list[str] | None = None, *, baseline: str | None = None, plot: str | Path | None = None,
          print_commands: bool = False, rerun_stale: bool = False, plan: Plan | None = None, runner=None,
          **verdict_options) -> StudyResult:
    """``scrnet study`` as a library call: fix the plan in the work dir (before the first cell runs), run every
    cell (:func:`run_study`), compare them (``verdict_options`` as :func:`~scrnet.experiments.compare.compare`
    takes them; the study's record of looks is ``WORK_DIR/looks.jsonl``) and write ``WORK_DIR/compare.json``,
    ``compare.md`` and, when asked and there are two groups or more, the forest plot."""
    from .compare import compare, load_run
    from .plan import LOOKS_FILE
    from .written import write_outputs

    work_dir = Path(work_dir)
    plan = fix_plan(work_dir, plan, seeds)
    cells = run_study(config, vary, variant_files, seeds, work_dir, common, print_commands, runner=runner,
                      rerun_stale=rerun_stale)
    if print_commands:
        return StudyResult(cells)
    result = compare([load_run(c) for c in cells], baseline, plan=plan, looks_record=work_dir / LOOKS_FILE,
                     **verdict_options)
    plot_path = plot if plot and result["comparisons"] else None
    files = [work_dir / "compare.json", work_dir / "compare.md"] + ([Path(plot_path)] if plot_path else [])
    write_outputs(result, files[0], files[1], plot_path)
    return StudyResult(cells, result, files, plot_skipped=bool(plot) and not plot_path)
