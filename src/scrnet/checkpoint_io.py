"""Checkpoint files: the format version, atomic writes, safe reads, and the periodic checkpoints of a work dir.

This module knows files, not models: :mod:`scrnet.loading` turns a checkpoint into a ready model, and the trainer
adds its resume state. A checkpoint is a dict of plain containers and tensors, loadable with
``torch.load(weights_only=True)`` (loading never runs code): ``format_version``, ``model`` (state dict), ``config``
(the resolved config as plain data, itself carrying ``format_version``), ``class_names``, ``palette``,
``normalization``, ``scrnet_version``, and for an exact resume ``optimizer``, ``scheduler``, ``scaler``,
``iteration``, ``rng``, ``best`` and ``run_id``. Periodic checkpoints are ``iter_XXXXXXXX.pth``; the last
``keep_last`` of the run that wrote them are kept, plus ``best.pth``.

A work dir holds one run. Each run has an id (``run_id``, stored in every checkpoint it writes) and a ledger,
``checkpoints/run.json``, naming the periodic checkpoints it wrote: :func:`prune` deletes only those, never a
checkpoint another run (or a user) put in the folder. The ledger is read as data: its names are only compared with
the names of files found in the folder, never used as paths.

Format versions: 1 is every checkpoint written before versions existed (no ``format_version`` key); 2 moved
``model.aux_weight`` to ``train.loss.aux_weight`` and made ``model.drop_path_rate`` apply to VAN only (see
:func:`scrnet.config.upgrade_config`).
"""

import json
import re
import warnings
from pathlib import Path

import torch

from .errors import ScrnetError
from .outputs import atomic_write

FORMAT_VERSION = 2
PATTERN = re.compile(r"iter_(\d+)\.pth$")
# Top-level keys this version writes or reads; a newer checkpoint may hold others.
KNOWN_KEYS = frozenset({"format_version", "model", "config", "class_names", "palette", "normalization",
                        "scrnet_version", "optimizer", "scheduler", "scaler", "iteration", "rng", "best", "run_id"})
LEDGER = "run.json"
# what a work dir holds once a run has started in it (config.yaml first of all: the trainer writes it before step 1)
RUN_FILES = ("config.yaml", "metrics.jsonl", "checkpoints")


class CheckpointError(ScrnetError, ValueError):
    """A file that is not a readable checkpoint of a version this scrnet understands; the message names it."""

    usage = True


class NewerFormatError(CheckpointError):
    """A checkpoint written by a newer scrnet: readable, but not by this version (never skipped silently)."""


def atomic_save(obj: dict, path: Path) -> None:
    """Save ``obj`` with :func:`torch.save` through :func:`scrnet.outputs.atomic_write`: a crash at any point
    leaves either the old file or the complete new one."""
    atomic_write(path, lambda f: torch.save(obj, f))


def load(path: str | Path) -> dict:
    """Read a checkpoint safely (``weights_only=True``) and check its format version. Raises
    :class:`FileNotFoundError` for a missing file and :class:`CheckpointError` (one line naming the file) for a
    torn, empty or foreign file, or one written by a newer scrnet (naming both versions and the unknown keys)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"cannot load checkpoint {path}: the file is empty")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"cannot load checkpoint {path}: {str(exc).splitlines()[0]}") from None
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{path} is not an SCRNet checkpoint (no model weights in it)")
    version = state.get("format_version", 1)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        unknown = sorted(set(state) - KNOWN_KEYS)
        raise NewerFormatError(f"{path} has checkpoint format version {version}, newer than this scrnet's "
                              f"{FORMAT_VERSION} (unknown keys: {unknown or 'none at the top level'}); upgrade "
                              f"scrnet to load it")
    return state


def sha256_of(path: str | Path) -> str:
    """The sha256 hex digest of a file, read in 1 MiB blocks."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_path(work_dir: Path, iteration: int) -> Path:
    return work_dir / "checkpoints" / f"iter_{iteration:08d}.pth"


def list_checkpoints(work_dir: Path) -> list[tuple[int, Path]]:
    folder = work_dir / "checkpoints"
    found = [(int(m.group(1)), p) for p in folder.glob("iter_*.pth") if (m := PATTERN.search(p.name))]
    return sorted(found)


def latest_checkpoint(work_dir: Path) -> Path | None:
    found = list_checkpoints(work_dir)
    return found[-1][1] if found else None


def newest_readable(work_dir: Path) -> tuple[Path, dict] | None:
    """The newest periodic checkpoint that loads, with its contents; each newer one that does not (torn by a
    crash, zero bytes, corrupted) is skipped with a warning naming it. None when there are no checkpoints; a
    :class:`CheckpointError` naming every file when none of them is readable."""
    found = list_checkpoints(work_dir)
    failures = []
    for _, path in reversed(found):
        try:
            state = load(path)
        except NewerFormatError:
            raise
        except (CheckpointError, OSError) as exc:
            failures.append(str(exc))
            warnings.warn(f"skipping unreadable checkpoint: {exc}", stacklevel=2)
            continue
        return path, state
    if failures:
        raise CheckpointError(f"no readable checkpoint in {work_dir / 'checkpoints'}: " + "; ".join(failures))
    return None


def run_files(work_dir: Path) -> list[str]:
    """The files of a run that ``work_dir`` already holds (empty when none): a new run must not start there."""
    found = [name for name in RUN_FILES[:2] if (work_dir / name).exists()]
    folder = work_dir / RUN_FILES[2]
    if folder.is_dir():
        found += [f"{RUN_FILES[2]}/{p.name}" for p in sorted(folder.iterdir())
                  if p.name == "best.pth" or PATTERN.search(p.name)][:3]
    return found


def ledger_path(work_dir: Path) -> Path:
    return work_dir / "checkpoints" / LEDGER


def written_by_run(work_dir: Path, run_id: str) -> set[str]:
    """The names of the periodic checkpoints the run ``run_id`` recorded in ``work_dir`` (empty when the ledger is
    missing, unreadable or another run's)."""
    try:
        data = json.loads(ledger_path(work_dir).read_text())
    except (OSError, ValueError):
        return set()
    if not isinstance(data, dict) or data.get("run_id") != run_id or not isinstance(data.get("checkpoints"), list):
        return set()
    return {name for name in data["checkpoints"] if isinstance(name, str)}


def _write_ledger(work_dir: Path, run_id: str, names: set[str]) -> None:
    text = json.dumps({"run_id": run_id, "checkpoints": sorted(names)})
    atomic_write(ledger_path(work_dir), lambda f: f.write(text.encode("utf-8")))


def record_written(work_dir: Path, run_id: str, path: Path) -> None:
    """Add the periodic checkpoint ``path`` to the ledger of run ``run_id`` (started afresh if it was another's)."""
    _write_ledger(work_dir, run_id, written_by_run(work_dir, run_id) | {path.name})


def prune(work_dir: Path, keep_last: int, run_id: str) -> None:
    """Delete all but the newest ``keep_last`` periodic checkpoints that run ``run_id`` wrote (its ledger); files of
    any other origin in the folder are left alone."""
    mine = written_by_run(work_dir, run_id)
    own = [p for _, p in list_checkpoints(work_dir) if p.name in mine]
    if len(own) <= keep_last:
        return
    for path in own[:-keep_last]:
        path.unlink(missing_ok=True)
    _write_ledger(work_dir, run_id, {p.name for p in own[-keep_last:]})
