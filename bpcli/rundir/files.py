"""Making run and sweep directories safely, and writing every file atomically (write_file)."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import tempfile
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO, Callable

from bpcli.errors import RunDirBusy, RunDirError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; the marker still guards --force
    fcntl = None  # type: ignore[assignment]

DEFAULT_ROOT = Path("outputs")


def next_free(root: Path, prefix: str, suffix: str = "", elsewhere: str = "pass --out DIR") -> Path:
    """Claim the first `<prefix><N><suffix>` under root (made if missing) with N above that of
    every `<prefix><N>` name there, whatever its extension: a directory when suffix is "",
    made by mkdir, else a file, created empty. Creating fails when the name exists, so of two
    processes that count the same N, one takes it and the other goes on to the next N.
    A RunDirError when root cannot be listed or written (`elsewhere`: the way out offered)."""
    taken = re.compile(rf"{re.escape(prefix)}(\d+)(\.\w+)?")
    n = 0
    for _ in range(1000):
        n = max([n] + [int(m.group(1)) for p in _listdir(root, elsewhere) if (m := taken.fullmatch(p.name))]) + 1
        path = root / f"{prefix}{n}{suffix}"
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise unwritable(root, exc, elsewhere) from None
        try:
            if suffix:
                path.open("x").close()
            else:
                path.mkdir()
        except FileExistsError:
            continue  # another process took N first
        except OSError as exc:
            raise unwritable(path, exc, elsewhere) from None
        return path
    raise RunDirError(f"{root}: no free {prefix}<N>{suffix or ' directory'}; {elsewhere}")


def _listdir(root: Path, elsewhere: str) -> list[Path]:
    try:
        return list(root.iterdir())
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise RunDirError(f"{root}: cannot list it ({exc.strerror}); {elsewhere}") from None


MARKER = ".bpcli"
"""The file bpcli writes into every directory it creates (a run id and when it was made);
--force clears only directories that carry it, and a process writing a directory holds a
lock on it, so two processes never write one directory at once."""

MANIFEST = "manifest.json"
"""What bpcli wrote in a directory it made: {"format": 1, "written": ["config.yaml", …,
"tensorboard/"]}, top-level names, a folder with a trailing slash. A name is listed before
its file is first written, so --force removes exactly these (and bpcli's own temporary
files) and refuses a directory that holds anything else. A run made before manifests has
none; it is then judged by the names bpcli writes (see _foreign)."""

_UMASK = os.umask(0)
os.umask(_UMASK)  # read once: mkstemp makes 0600 files, and a written file gets the usual mode

_held: dict[Path, int] = {}  # the marker files this process holds locked, by directory


def claim(path: Path, elsewhere: str = "choose another --out") -> None:
    """Mark `path` as bpcli's and lock it for this process (released by `release` or at exit);
    a RunDirError if another process holds it, or if it cannot be written (`elsewhere`: the
    way out the message offers)."""
    try:
        fd = os.open(path / MARKER, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        raise unwritable(path, exc, elsewhere) from None
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise RunDirBusy(f"{path}: another bpcli process is writing there right now; "
                         "wait for it to end, or choose another --out") from None
    if not os.access(path, os.W_OK):  # the mark is there and writable, the folder is not
        os.close(fd)
        raise unwritable(path, PermissionError(errno.EACCES, os.strerror(errno.EACCES)), elsewhere)
    if os.fstat(fd).st_size == 0:  # a new mark: who made the directory, and when
        os.write(fd, json.dumps({"run_id": uuid.uuid4().hex, "created": timestamp()}).encode() + b"\n")
    _held[path.resolve()] = fd


def unwritable(path: Path, exc: OSError, elsewhere: str) -> RunDirError:
    """The error for a file or folder that cannot be written: read-only, a name too long,
    a full disk, each said as what it is."""
    why = exc.strerror or str(exc)
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        if not path.is_dir() and path.parent.is_dir() and not os.access(path.parent, os.W_OK):
            path = path.parent  # the folder, not the file, refuses new files
        return RunDirError(f"{path}: is read-only ({why}); make it writable, or {elsewhere}")
    if exc.errno == errno.ENAMETOOLONG:
        return RunDirError(f"{path}: the name is too long ({why}); {elsewhere}")
    if exc.errno == errno.ELOOP:
        return RunDirError(f"{path}: is a symbolic link; bpcli never writes through a link, so remove it "
                           f"or {elsewhere}")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return RunDirError(f"{path}: cannot be written ({why}); free some space, or {elsewhere}")
    return RunDirError(f"{path}: cannot write there ({why}); {elsewhere}")


def release(path: Path) -> None:
    """Let other processes write `path` again."""
    fd = _held.pop(path.resolve(), None)
    if fd is not None:
        os.close(fd)


def check_out(out: str | Path) -> Path:
    """An --out that can name a directory or a file bpcli creates; a RunDirError saying why
    not (an empty name would be the current directory; a name longer than the file system
    allows), before anything is made."""
    if str(out).strip() == "":
        raise RunDirError("--out '': an empty name would be the current directory; give a directory name")
    path = Path(out)
    for part in path.parts:
        if len(os.fsencode(part)) > 255:  # NAME_MAX on every file system bpcli runs on
            raise RunDirError(f"--out {str(path)[:40]}…: a name in it is {len(part)} characters long, more than "
                              "a file system allows (255 bytes); choose another --out")
    return path


def check_figure_out(out: Path, force: bool, formats: tuple[str, ...], create_folder: bool = True) -> None:
    """Refuse an --out that cannot take a figure, before anything is drawn: a name not ending
    in one of `formats`, a directory, a file already there (unless `force`), a folder that
    cannot be made (or, without `create_folder`, one that does not exist); a RunDirError."""
    *others, last = (f".{f}" for f in formats)
    if out.suffix.lstrip(".").lower() not in formats:
        raise RunDirError(f"--out {out}: give a file ending in {', '.join(others) + ' or ' if others else ''}{last}")
    if out.is_dir():
        raise RunDirError(f"--out {out}: is a directory; give a file in it, e.g. "
                          f"--out {out / ('figure.' + formats[0])}")
    if (out.exists() or out.is_symlink()) and not force:
        raise RunDirError(f"{out}: already exists; write to --out NEW{out.suffix}, or add --force to replace it")
    if not create_folder:
        if not out.parent.is_dir():
            raise RunDirError(f"{out.parent}: no such folder; create it, or choose another --out")
        return
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunDirError(f"--out {out}: cannot create its folder ({exc.strerror or exc}); "
                          "choose another --out") from None


def create_run_dir(out: Path | None, force: bool = False, root: Path = DEFAULT_ROOT, prefix: str = "run") -> Path:
    """Create the directory a new run writes to, marked and locked, never reusing a
    non-empty one unless forced.

    With `out` None, the next free `run<N>` under root. `force` clears a directory bpcli
    made (one that carries its marker) of what bpcli wrote there and refuses one holding
    anything else: not another program's files, not through a symbolic link, not the
    current directory or one holding it.
    """
    if out is None:
        path = next_free(root, prefix)
        claim(path)
        _start_manifest(path)
        return path
    path = check_out(out)
    try:
        if path.is_symlink():
            raise RunDirError(f"{path}: is a symbolic link; give the real directory, or another --out")
        if path.exists() and not path.is_dir():
            raise RunDirError(f"{path}: exists and is not a directory; choose another --out")
        if path.is_dir() and any(path.iterdir()):
            _check_replaceable(path, force)
            claim(path)
            _clear(path)
            _start_manifest(path)
            return path
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise unwritable(path, exc, "choose another --out") from None
    claim(path)
    _start_manifest(path)
    return path


def _start_manifest(path: Path) -> None:
    _write(path / MANIFEST, _manifest_bytes([]))


def _manifest_bytes(names: list[str]) -> bytes:
    return (json.dumps({"format": 1, "written": sorted(set(names))}, indent=1) + "\n").encode()


def read_manifest(directory: Path) -> set[str] | None:
    """The names bpcli wrote in `directory` (folders end in a slash), or None when it has no
    manifest (a run from before them, or not bpcli's); a RunDirError if it is damaged."""
    path = directory / MANIFEST
    if not path.is_file() or path.is_symlink():
        return None
    try:
        written = json.loads(path.read_text(encoding="utf-8"))["written"]
        if not all(isinstance(name, str) and name and "/" not in name.rstrip("/") for name in written):
            raise ValueError
    except (OSError, ValueError, KeyError, TypeError):
        raise RunDirError(f"{path}: damaged; bpcli cannot tell what it wrote here, so it will not replace "
                          "this directory; choose another --out") from None
    return set(written)


def record(directory: Path, *names: str) -> None:
    """List `names` (a folder's with a trailing slash) in `directory`'s manifest, if it has
    one, before they are written: --force then knows them as bpcli's."""
    try:
        listed = read_manifest(directory)
    except RunDirError:
        return  # damaged: left as it is, and --force refuses the directory
    if listed is None or set(names) <= listed:
        return
    _write(directory / MANIFEST, _manifest_bytes([*listed, *names]))


def make_folder(path: Path) -> Path:
    """A folder bpcli writes into, listed in its parent's manifest; never a link, never
    another program's file."""
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise RunDirError(f"{path}: is {'a symbolic link' if path.is_symlink() else 'a file'}, not a folder "
                          "bpcli made; move it out of the way, then run again")
    record(path.parent, path.name + "/")
    path.mkdir(exist_ok=True)
    return path


# What bpcli wrote in a run or sweep directory made before manifests (see _foreign).
_WRITTEN = re.compile(
    r"config\.yaml|summary\.json|metrics\.csv|data\.csv|curve\.csv|predictions\.csv|preprocessing\.json"
    r"|checkpoint\.pt|sweep\.json|summary\.csv|aggregates\.csv|events\.out\.tfevents\..*"
    r"|(loss|fit|params|landscape|residuals|losses|lr)\.(png|svg|pdf)|descent\.gif"
)
# bpcli's temporary files: .<name>.<random>.tmp (write_file), and before it .<name>.tmp, .<name>.<pid>.tmp
_TEMPORARY = [re.compile(r"\.(.+)\.[a-z0-9_]{8}\.tmp"), re.compile(r"\.(.+)\.\d+\.tmp"), re.compile(r"\.(.+)\.tmp")]


def _foreign(path: Path) -> list[str]:
    """The entries of a bpcli directory that bpcli did not write there: anything its manifest
    does not list, but the marker, the manifest and bpcli's leftover temporary files.

    A run made before manifests is judged by name and type: a file of a name bpcli writes,
    a tensorboard/ folder holding only event files, a temporary file of one of those.
    """
    listed = read_manifest(path)

    def ours(entry: Path) -> bool:
        if entry.name in (MARKER, MANIFEST):
            return entry.is_file() and not entry.is_symlink()
        if entry.is_symlink():
            return False
        if entry.is_dir():
            return (entry.name + "/" in listed) if listed is not None else \
                entry.name == "tensorboard" and _only_events(entry)
        names = [entry.name] + [m.group(1) for pattern in _TEMPORARY if (m := pattern.fullmatch(entry.name))]
        if listed is not None:
            return any(name in listed or name in (MARKER, MANIFEST) for name in names)
        return any(_WRITTEN.fullmatch(name) for name in names)

    return sorted(e.name + ("/" if e.is_dir() and not e.is_symlink() else "") for e in path.iterdir()
                  if not ours(e))


def _only_events(folder: Path) -> bool:
    return all(p.is_dir() and not p.is_symlink() or p.is_file() and p.name.startswith("events.out.tfevents.")
               for p in folder.rglob("*"))


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
        more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
        raise RunDirError(f"{path}: also holds {foreign[0]}{more}, which bpcli did not write; --force will not "
                          "delete them, so move them out or choose another --out")
    here = Path.cwd().resolve()
    if here == path.resolve() or path.resolve() in here.parents:
        raise RunDirError(f"{path}: is the current directory or holds it; --force will not clear it, "
                          "so change directory or choose another --out")


def _clear(path: Path) -> None:
    """Remove what bpcli wrote in a claimed directory (checked by _check_replaceable to be
    all it holds), but its marker; links are removed, never followed."""
    for entry in path.iterdir():
        if entry.name == MARKER:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


# --------------------------------------------------------------------------- writing


def write_file(path: Path, write: Callable[[BinaryIO], Any]) -> Path:
    """The one way bpcli writes a file: `write(fh)` fills a temporary file beside `path`,
    which is then renamed over it. A failure part-way (a full disk, an encoding error, a
    signal) leaves the old file whole, or none, and never the temporary file.

    The name is listed in the directory's manifest first (see MANIFEST). A symbolic link
    or a folder at `path` is refused (a RunDirError naming it): bpcli never writes through
    a link, and never replaces what it did not make.
    """
    path = Path(path)
    if path.is_symlink():
        raise RunDirError(f"{path}: is a symbolic link; bpcli never writes through a link or replaces one, "
                          "so remove it (or move it out of the directory), then run again")
    if path.is_dir():
        raise RunDirError(f"{path}: is a folder, where bpcli writes a file; move it out of the way, then run again")
    if path.name != MANIFEST:
        record(path.parent, path.name)
    _write(path, write)
    return path


def _write(path: Path, write: Callable[[BinaryIO], Any] | bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            if isinstance(write, bytes):
                fh.write(write)
            else:
                write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.filename in (None, tmp):
            exc.filename = str(path)  # a full disk names the file bpcli was writing, not its temporary copy
        raise


def write_text(path: Path, text: str) -> Path:
    """Write text as UTF-8 through write_file (encoded first: an unencodable character
    leaves the old file as it was)."""
    data = text.encode("utf-8")
    return write_file(path, lambda fh: fh.write(data))


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
