"""Making run and sweep directories safely, and writing files atomically."""

from __future__ import annotations

import os
import re
import shutil
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from bpcli.errors import RunDirError

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


def is_run_dir(path: Path) -> bool:
    """Whether `path` looks like a directory bpcli wrote."""
    written = (path / "summary.json").is_file() or (path / "sweep.json").is_file()
    return (path / "config.yaml").is_file() and written


def _next_free(root: Path, prefix: str) -> Path:
    for _ in range(1000):  # another process may take the same number first
        path = next_run_dir(root, prefix)
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
        except OSError as exc:
            raise RunDirError(f"{path}: cannot create it ({exc.strerror}); pass --out DIR") from None
    raise RunDirError(f"{root}: no free run<N> directory; pass --out DIR")


def create_run_dir(out: Path | None, force: bool = False, root: Path = DEFAULT_ROOT, prefix: str = "run") -> Path:
    """Create the directory a new run writes to, never reusing a non-empty one unless forced.

    With `out` None, the next free `run<N>` under root. `force` clears an existing run
    directory first; it still refuses a non-empty directory that bpcli did not write.
    """
    if out is None:
        return _next_free(root, prefix)
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise RunDirError(f"{path}: exists and is not a directory; choose another --out")
    if path.is_dir() and any(path.iterdir()):
        if not force:
            raise RunDirError(
                f"{path}: already holds files; choose another --out, or add --force to replace "
                "the run that is there"
            )
        if not is_run_dir(path):
            raise RunDirError(
                f"{path}: holds files that are not a bpcli run; --force only replaces runs, "
                "so choose another --out"
            )
        shutil.rmtree(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".bpcli-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise RunDirError(f"{path}: cannot write there ({exc.strerror}); choose another --out") from None
    return path


def write_atomic(path: Path, text: str) -> None:
    """Write text to path through a temporary file and a rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def bpcli_version() -> str:
    """The installed bpcli's version, from the package metadata."""
    try:
        return metadata.version("bpcli")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"



def timestamp() -> str:
    """The time as run files record it: UTC, to the second, in ISO 8601."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
