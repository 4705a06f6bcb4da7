"""Running ``scrnet`` as its console script does, and the benchmark scripts, in this process (faster than a
subprocess per call)."""

import contextlib
import io
from pathlib import Path

from scrnet.cli import main


def run(*args) -> tuple[int, str, str]:
    """``scrnet ARGS``: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse's usage errors and --help, as the console script would exit
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return code, out.getvalue(), err.getvalue()


class Result:
    """What ``subprocess.run`` returns for a finished command: ``returncode``, ``stdout``, ``stderr``."""

    def __init__(self, code: int, out: str, err: str):
        self.returncode, self.stdout, self.stderr = code, out, err


def run_like_subprocess(*args) -> Result:
    """``scrnet ARGS`` in this process, with ``subprocess.run``'s result interface (a drop-in for tests written
    against a subprocess; about 2 s faster per call: no interpreter and torch start-up)."""
    return Result(*run(*args))


BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def run_benchmark(script: str, *args) -> Result:
    """``python benchmarks/SCRIPT ARGS`` from the benchmarks folder, in this process (``runpy``): the script's folder
    on ``sys.path`` as Python puts it, its stdout/stderr captured, its exit code from ``SystemExit``; the working
    folder, ``sys.argv``, ``sys.path`` and torch's thread count are restored afterwards."""
    import os
    import runpy
    import sys

    import torch

    saved = os.getcwd(), list(sys.argv), list(sys.path), torch.get_num_threads()
    out, err = io.StringIO(), io.StringIO()
    code = 0
    try:
        os.chdir(BENCHMARKS)
        sys.argv = [script, *(str(a) for a in args)]
        sys.path.insert(0, str(BENCHMARKS))
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                runpy.run_path(str(BENCHMARKS / script), run_name="__main__")
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        os.chdir(saved[0])
        sys.argv, sys.path[:] = saved[1], saved[2]
        torch.set_num_threads(saved[3])
    return Result(code, out.getvalue(), err.getvalue())
