"""Running ``scrnet`` as its console script does, in this process (faster than a subprocess per call)."""

import contextlib
import io

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
