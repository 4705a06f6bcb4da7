"""The training log, ``WORK_DIR/metrics.jsonl``: its one writer and its one reader.

One JSON object per line, appended as training goes: ``{"iter": N, "loss": ..., "lr": ...}`` every
``train.log_interval`` iterations and ``{"iter": N, "val_miou": ...}`` at validations. The file is only ever
appended to, so a run that was stopped and resumed keeps the lines of the attempt that was cut short, including
those of iterations after the checkpoint it resumed from, which the resumed attempt trains (and logs) again.

A resume therefore first appends a marker, ``{"resumed_from": K}`` (K: the checkpoint's iteration, 0 when none
was found), and :func:`read_log` returns the run's history as trained: every line of an earlier attempt with an
iteration above K is dropped, since the resumed attempt replaced it. Nothing is deleted from the file. A log written
before the marker existed reads as it is, repeated iterations included.
"""

import json
from pathlib import Path

from ..errors import ScrnetError

LOG_FILE = "metrics.jsonl"
RESUMED = "resumed_from"


class TrainingLogError(ScrnetError, ValueError):
    """A training log with a line that is not a JSON object; the message names the file and line."""

    usage = True


def append(path: Path, record: dict) -> None:
    """Append one record as a line of ``path``."""
    with Path(path).open("a") as f:
        f.write(json.dumps(record) + "\n")


def mark_resume(path: Path, iteration: int) -> None:
    """Record that training resumes from ``iteration``: later lines replace earlier lines after it."""
    append(path, {RESUMED: iteration})


def read_log(path: Path) -> list[dict]:
    """The records of ``path`` in the order training produced them, without those a resume replaced and without
    the markers. A line that is not a JSON object raises :class:`TrainingLogError` naming the file and line."""
    records: list[dict] = []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TrainingLogError(f"{path}:{number}: not a JSON line ({exc.msg})") from None
        if not isinstance(record, dict):
            raise TrainingLogError(f"{path}:{number}: not a JSON object")
        if RESUMED in record:
            since = record[RESUMED]
            records = [r for r in records if not (isinstance(r.get("iter"), int) and r["iter"] > since)]
            continue
        records.append(record)
    return records
