"""What a run or an evaluation ran on, recorded next to its results: versions, the source checkout, threads and
device. The config says what was computed; this says where and with what, which changes the rounding (threads,
device, library versions) and, for a checkout with local edits, possibly more.

Training appends one line per attempt to ``WORK_DIR/environment.jsonl`` (a resumed run may continue on another
machine or with another thread count); an eval JSON carries the same dictionary under ``environment``.
"""

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import torch

from ._version import __version__

SOURCE = Path(__file__).resolve().parent  # the scrnet package this process imported
ENVIRONMENT_FILE = "environment.jsonl"


def source_commit() -> dict | None:
    """``{"commit": SHA, "modified": bool}`` when the imported scrnet lies in a git work tree (an editable install
    or a ``PYTHONPATH`` checkout), ``modified`` meaning that its ``src/`` has uncommitted changes; None for an
    installed wheel or where git is not available."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(SOURCE), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit or git("ls-files", "--error-unmatch", "__init__.py") is None:  # not this package's own repo
        return None
    status = git("status", "--porcelain", "--untracked-files=no", "--", str(SOURCE.parent))
    return {"commit": commit, "modified": bool(status)}


def environment(device: torch.device | None = None) -> dict:
    """The versions, source checkout, intra-op threads (and the ``OMP_NUM_THREADS`` that set them) and device of
    this process; for a CUDA device, its name and the CUDA and cuDNN versions too."""
    out = {"scrnet": __version__, "source": source_commit(), "torch": torch.__version__,
           "python": platform.python_version(), "platform": f"{sys.platform}-{platform.machine()}",
           "threads": torch.get_num_threads(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
           "device": str(device) if device is not None else None}
    if device is not None and device.type == "cuda":
        out.update({"device_name": torch.cuda.get_device_name(device), "cuda": torch.version.cuda,
                    "cudnn": torch.backends.cudnn.version()})
    return out


def record_environment(work_dir: Path, iteration: int, device: torch.device) -> None:
    """Append this attempt's :func:`environment`, from ``iteration`` on, to ``work_dir/environment.jsonl``."""
    with (Path(work_dir) / ENVIRONMENT_FILE).open("a") as f:
        f.write(json.dumps({"from_iteration": iteration, **environment(device)}) + "\n")
