"""Making run and sweep directories safely, and writing files atomically."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import uuid
from datetime import datetime, timezone
from pathlib import Path

from bpcli.errors import RunDirError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; the marker still guards --force
    fcntl = None  # type: ignore[assignment]

DEFAULT_ROOT = Path("outputs")


def next_run_dir(root: Path = DEFAULT_ROOT, prefix: str = "run") -> Path:
    """The first `<prefix><N>` under root with N above every existing one."""
    taken = [int(m.group(1)) for p in _listdir(root) if (m := re.fullmatch(rf"{prefix}(\d+)", p.name))]
    return root / f"{prefix}{max(taken, default=0) + 1}"


def _listdir(root: Path) -> list[Path]:
    try:
        return list(root.iterdir())
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise RunDirError(f"{root}: cannot list it ({exc.strerror}); choose another --out") from None


MARKER = ".bpcli"
"""The file bpcli writes into every directory it creates (a run id and when it was made);
--force clears only directories that carry it, and a process writing a directory holds a
lock on it, so two processes never write one directory at once."""

_held: dict[Path, int] = {}  # the marker files this process holds locked, by directory


def claim(path: Path) -> None:
    """Mark `path` as bpcli's and lock it for this process (released by `release` or at exit);
    a RunDirError if another process holds it."""
    try:
        fd = os.open(path / MARKER, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise RunDirError(f"{path}: cannot write there ({exc.strerror}); choose another --out") from None
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise RunDirError(f"{path}: another bpcli process is writing there right now; "
                          "wait for it to end, or choose another --out") from None
    if os.fstat(fd).st_size == 0:  # a new mark: who made the directory, and when
        os.write(fd, json.dumps({"run_id": uuid.uuid4().hex, "created": timestamp()}).encode() + b"\n")
    _held[path.resolve()] = fd


def release(path: Path) -> None:
    """Let other processes write `path` again."""
    fd = _held.pop(path.resolve(), None)
    if fd is not None:
        os.close(fd)


def _next_free(root: Path, prefix: str) -> Path:
    for _ in range(1000):  # another process may take the same number first
        path = next_run_dir(root, prefix)
        try:
            path.mkdir(parents=True)
        except FileExistsError:
            continue
        except OSError as exc:
            raise RunDirError(f"{path}: cannot create it ({exc.strerror}); pass --out DIR") from None
        claim(path)
        return path
    raise RunDirError(f"{root}: no free run<N> directory; pass --out DIR")


def create_run_dir(out: Path | None, force: bool = False, root: Path = DEFAULT_ROOT, prefix: str = "run") -> Path:
    """Create the directory a new run writes to, marked and locked, never reusing a
    non-empty one unless forced.

    With `out` None, the next free `run<N>` under root. `force` clears a directory bpcli
    made (one that carries its marker) and nothing else: not another program's files, not
    through a symbolic link, not the current directory or one holding it.
    """
    if out is None:
        return _next_free(root, prefix)
    path = Path(out)
    if path.is_symlink():
        raise RunDirError(f"{path}: is a symbolic link; give the real directory, or another --out")
    if path.exists() and not path.is_dir():
        raise RunDirError(f"{path}: exists and is not a directory; choose another --out")
    if path.is_dir() and any(path.iterdir()):
        _check_replaceable(path, force)
        claim(path)
        _clear(path)
        return path
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunDirError(f"{path}: cannot write there ({exc.strerror}); choose another --out") from None
    claim(path)
    return path


# What bpcli writes in a run or sweep directory; --force clears these and nothing else.
_WRITTEN = re.compile(
    r"(config\.yaml|summary\.json|metrics\.csv|data\.csv|curve\.csv|predictions\.csv|preprocessing\.json"
    r"|checkpoint\.pt|sweep\.json|summary\.csv|aggregates\.csv|tensorboard|events\.out\.tfevents\..*"
    r"|(loss|fit|params|landscape|residuals|losses|lr)\.(png|svg|pdf)|descent\.gif|\..*\.tmp)"
)


def _foreign(path: Path) -> list[str]:
    """The names in a bpcli directory that bpcli did not write there."""
    return sorted(e.name + ("/" if e.is_dir() else "") for e in path.iterdir()
                  if e.name != MARKER and not _WRITTEN.fullmatch(e.name))


def _check_replaceable(path: Path, force: bool) -> None:
    if not force:
        raise RunDirError(
            f"{path}: already holds files; choose another --out, or add --force to replace "
            "the run that is there"
        )
    if not (path / MARKER).is_file():
        raise RunDirError(
            f"{path}: holds files that are not a bpcli run (no {MARKER} marker); --force only replaces "
            "directories bpcli made, so choose another --out"
        )
    foreign = _foreign(path)
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise RunDirError(f"{path}: also holds files bpcli did not write ({shown}); --force will not delete "
                          "them, so move them out or choose another --out")
    here = Path.cwd().resolve()
    if here == path.resolve() or path.resolve() in here.parents:
        raise RunDirError(f"{path}: is the current directory or holds it; --force will not clear it, "
                          "so change directory or choose another --out")


def _clear(path: Path) -> None:
    """Remove everything in a claimed directory but its marker (links are removed, never followed)."""
    for entry in path.iterdir():
        if entry.name == MARKER:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def write_atomic(path: Path, text: str) -> None:
    """Write text to path through a temporary file and a rename.

    On a full disk the temporary file cannot be written, and none is left behind; a file
    that exists already is then rewritten in place, in the space it frees (so a run's last
    summary.json still says how it ended), and the error is raised all the same.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno == errno.ENOSPC and path.is_file():
            with contextlib.suppress(OSError), open(path, "w", encoding="utf-8", newline="") as fh:
                fh.write(text)
        raise


def bpcli_version() -> str:
    """The installed bpcli's version, from the package metadata."""
    from importlib import metadata

    try:
        return metadata.version("bpcli")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"



def timestamp() -> str:
    """The time as run files record it: UTC, to the second, in ISO 8601."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
