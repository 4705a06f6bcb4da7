"""Writing into folders users name without touching what is theirs: the one owner of "which files did scrnet
write here".

A command that writes into a folder (``predict``, ``demo``) records each file it writes (every file under a folder
it writes), relative to the folder, with its size and modification time, in a manifest beside them
(``.scrnet-written.json``). An existing file may be replaced only when an earlier run of scrnet recorded it there
and it is unchanged since; a folder only when every file under it is such a file. Anything else is refused before
the first write, naming it. The manifest is read as data, used only to answer "did scrnet write this path, and is
it as scrnet left it?" for paths the command itself computed, never to choose what to read, write or delete.
"""

import json
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO

from .errors import ScrnetError

MANIFEST = ".scrnet-written.json"


def atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """The one way scrnet replaces a file it owns: ``write`` fills a temporary file in the same folder, which is
    flushed to disk and renamed over ``path``, and the folder is flushed, so a crash at any point leaves either the
    old file or the complete new one (never a partial file, never a stray temporary)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would make a shared work dir's files private
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def _umask() -> int:
    # os.umask can only be read by setting it; /proc holds it on Linux without touching the process
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (the directory entry itself is flushed); no-op where unsupported."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class OutputRefused(ScrnetError):
    """An output path exists and scrnet did not write it."""

    usage = True


class OutputFolder:
    """The files a command writes under ``root``; see the module docstring."""

    def __init__(self, root: str | Path, command: str):
        self.root = Path(root)
        self.command = command
        self.owned = self._read_manifest()
        self.written: set[str] = set()

    def _read_manifest(self) -> dict[str, list[int]]:
        path = self.root / MANIFEST
        if path.is_symlink() or not path.is_file():
            return {}
        try:
            entries = json.loads(path.read_text(encoding="utf-8")).get("written", {})
        except (OSError, ValueError, AttributeError):
            return {}  # not ours, or damaged: nothing here counts as written by scrnet
        if not isinstance(entries, dict):
            return {}
        return {k: v for k, v in entries.items() if isinstance(k, str) and isinstance(v, list) and len(v) == 2
                and all(isinstance(x, int) for x in v)}

    @staticmethod
    def _stamp(path: Path) -> list[int]:
        st = path.stat()
        return [st.st_size, st.st_mtime_ns]

    def _relative(self, path: Path) -> str:
        try:
            return Path(path).relative_to(self.root).as_posix()
        except ValueError:
            raise ValueError(f"{path} is not under {self.root}") from None  # a bug of the caller

    def refused(self, paths: Iterable[Path]) -> list[Path]:
        """Those of ``paths`` that exist (or are links) and were not written by scrnet."""
        return [p for p in paths if (p.exists() or p.is_symlink()) and not self.owns(p)]

    def check(self, paths: Iterable[Path]) -> None:
        """Refuse, before anything is written, when any of ``paths`` exists and was not written by scrnet."""
        bad = self.refused(list(paths))
        if bad:
            more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
            raise OutputRefused(f"{bad[0]} exists and was not written by scrnet{more}; scrnet {self.command} "
                                f"replaces only what it wrote: choose another output folder, or move it away")

    def claim(self, path: Path) -> Path:
        """Record ``path`` as written by this command (checked with :meth:`check` first); returns it."""
        self.check([path])
        self.written.add(self._relative(path))
        return path

    def owns(self, path: Path) -> bool:
        """Whether scrnet wrote ``path``: this run claimed it, or an earlier run recorded it and it is unchanged
        (a folder: every file under it)."""
        path = Path(path)
        rel = self._relative(path)
        if rel in self.written:
            return True
        if path.is_dir() and not path.is_symlink():
            return all(self.owns(p) for p in path.iterdir())
        return not path.is_symlink() and path.is_file() and self.owned.get(rel) == self._stamp(path)

    def save(self) -> None:
        """Write the manifest: what earlier runs and this one wrote (atomically, with ordinary permissions)."""
        if not self.written:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / MANIFEST
        if path.is_symlink() or (path.exists() and not path.is_file()):
            raise OutputRefused(f"{path} exists and is not a file scrnet wrote")
        entries = dict(self.owned)
        for rel in self.written:
            written = self.root / rel
            files = [written] if not written.is_dir() else [p for p in written.rglob("*") if p.is_file()]
            for file in files:
                if file.is_file() and not file.is_symlink():
                    entries[file.relative_to(self.root).as_posix()] = self._stamp(file)
        text = json.dumps({"written_by": f"scrnet {self.command}", "written": dict(sorted(entries.items()))}, indent=1)
        atomic_write(path, lambda f: f.write((text + "\n").encode("utf-8")))
