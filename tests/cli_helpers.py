"""Running ``scrnet`` as its console script does, in this process (faster than a subprocess per call)."""

import contextlib
import io

from scrnet.cli import main


def run(*args) -> tuple[int, str, str]:
    """``scrnet ARGS``: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()
