"""Every byte bpcli writes: whole or not at all, inside the directory it was given, never
through a link, and --force removing exactly what bpcli wrote (bpcli.rundir.files)."""

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bpcli.rundir import files
from conftest import CONFIGS, cli

EXP2 = CONFIGS / "exp2.yaml"
QUICK = ["--device", "cpu", "--epochs", "20", "--log-every", "5", "-q"]


def one_line(result):
    lines = result.stderr.strip().splitlines()
    return len(lines) == 1 and "Traceback" not in result.output and "unexpected" not in result.stderr


def leftovers(folder):
    return sorted(p.name for p in Path(folder).iterdir() if p.name.endswith(".tmp") or ".partial" in p.name)


def snapshot(folder):
    return {p.name: p.read_bytes() for p in Path(folder).iterdir() if p.is_file()}


@pytest.fixture
def run():
    assert cli("train", EXP2, *QUICK, "--out", "run").exit_code == 0
    return Path("run")


# --------------------------------------------------------------------------- whole or not at all


def _half_then(error):
    def write(fh):
        fh.write(b"half a file")
        raise error
    return write


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left on device"),
                                   UnicodeEncodeError("utf-8", "\udcff", 0, 1, "surrogates not allowed"),
                                   KeyboardInterrupt()], ids=["full-disk", "encoding", "signal"])
@pytest.mark.parametrize("before", [b"the old file\n", None], ids=["replacing", "new"])
def test_a_write_that_fails_part_way_leaves_the_old_file_or_none(tmp_path, error, before):
    path = tmp_path / "summary.json"
    if before is not None:
        path.write_bytes(before)
    with pytest.raises(type(error)):
        files.write_file(path, _half_then(error))
    assert (path.read_bytes() if path.exists() else None) == before
    assert leftovers(tmp_path) == []


def test_text_that_cannot_be_encoded_leaves_the_old_file(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("old: 1\n")
    with pytest.raises(UnicodeEncodeError):
        files.write_text(path, "new: \udcff\n")
    assert path.read_text() == "old: 1\n" and leftovers(tmp_path) == []


def _savefig_fails_part_way(monkeypatch):
    from matplotlib.figure import Figure

    def savefig(self, fname, **kwargs):
        (open(fname, "wb") if isinstance(fname, (str, Path)) else fname).write(b"\x89PNG half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", savefig)


def test_plot_on_a_full_disk_keeps_the_old_figures_whole(run, monkeypatch):
    before = snapshot(run)
    _savefig_fails_part_way(monkeypatch)
    result = cli("plot", run)
    assert result.exit_code == 2 and one_line(result) and "No space left" in result.stderr, result.output
    assert snapshot(run) == before and leftovers(run) == []


def test_a_checkpoint_or_a_gif_that_fails_part_way_leaves_the_old_one(run, monkeypatch):
    import torch
    from PIL import Image

    assert cli("animate", run, "--frames", "3").exit_code == 0
    before = snapshot(run)

    def half(obj, fh, *args, **kwargs):
        fh.write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", lambda self, fh, *a, **k: half(None, fh))
    result = cli("animate", run, "--frames", "3", "--force")
    assert result.exit_code == 2 and one_line(result), result.output
    monkeypatch.setattr(torch, "save", half)
    result = cli("train", "--resume", run, "--epochs", "30", "--no-plots", "-q")
    assert result.exit_code == 1 and "recorded as failed" in result.stderr, result.output
    assert Path(run, "checkpoint.pt").read_bytes() == before["checkpoint.pt"]
    assert Path(run, "descent.gif").read_bytes() == before["descent.gif"]
    assert leftovers(run) == []


def test_every_file_a_run_writes_goes_through_the_one_writer(monkeypatch):
    written = []
    original = files._write

    def spy(path, write):
        written.append(Path(path).name)
        return original(path, write)

    monkeypatch.setattr(files, "_write", spy)
    assert cli("train", EXP2, *QUICK, "--out", "run").exit_code == 0
    assert cli("plot", "run", "--format", "svg").exit_code == 0
    assert cli("animate", "run", "--frames", "3").exit_code == 0
    assert cli("sweep", EXP2, "--grid", "lr=0.01,0.1", "--epochs", "5", "--out", "sweep", "-q").exit_code == 0
    shutil.copytree("run", "again")  # compare draws two runs (the same one twice is refused)
    assert cli("compare", "run", "again", "--out", "both.pdf").exit_code == 0
    appended = {files.MARKER, "metrics.csv"}  # the lock, and the log that grows a row at a time
    for folder in ("run", "sweep"):
        for path in Path(folder).iterdir():
            assert path.name in written or path.name in appended, path
    assert "both.pdf" in written


# --------------------------------------------------------------------------- links and folders


@pytest.fixture
def outside(tmp_path):
    path = tmp_path / "outside.txt"
    path.write_text("not bpcli's\n")
    return path


def test_plot_never_writes_through_a_link(run, outside):
    Path(run, "loss.png").unlink()
    Path(run, "loss.png").symlink_to(outside)
    result = cli("plot", run)
    assert result.exit_code == 2 and one_line(result), result.output
    assert f"{run / 'loss.png'}: is a symbolic link" in result.stderr
    assert outside.read_text() == "not bpcli's\n" and Path(run, "loss.png").is_symlink()


@pytest.mark.parametrize("args", [
    ["animate", "run", "--frames", "3", "--force", "--out", "run/link.gif"],
    ["compare", "run", "other", "--force", "--out", "run/link.png"],
    ["explain", "--expr", "J = x**2", "--at", "x=1", "--force", "--out", "run/link.png"],
], ids=["animate", "compare", "explain"])
def test_no_command_writes_through_a_link(run, outside, args):
    if "other" in args:
        shutil.copytree(run, "other")
    Path(args[-1]).symlink_to(outside)
    result = cli(*args)
    assert result.exit_code == 2 and one_line(result) and "symbolic link" in result.stderr, result.output
    assert outside.read_text() == "not bpcli's\n"


def test_train_into_a_run_whose_summary_is_a_link_refuses_to_write_it(run, outside):
    Path(run, "summary.json").rename(outside.with_name("summary.json"))
    Path(run, "summary.json").symlink_to(outside.with_name("summary.json"))
    before = outside.with_name("summary.json").read_bytes()
    result = cli("train", "--resume", run, "--epochs", "30", "--no-plots")
    assert result.exit_code == 2 and "symbolic link" in result.stderr, result.output
    assert outside.with_name("summary.json").read_bytes() == before


# --------------------------------------------------------------------------- the manifest and --force


def test_a_run_lists_what_it_wrote_in_its_manifest(run):
    manifest = json.loads(Path(run, files.MANIFEST).read_text())
    assert manifest["format"] == 1
    on_disk = {p.name for p in run.iterdir()} - {files.MARKER, files.MANIFEST}
    assert set(manifest["written"]) == on_disk


@pytest.mark.parametrize("foreign", ["tensorboard/", ".notes.tmp/", "loss.svg/", "notes.txt", "fit.png@"])
@pytest.mark.parametrize("manifest", [True, False], ids=["manifest", "old-run"])
def test_force_removes_what_bpcli_wrote_and_refuses_anything_else(run, foreign, manifest):
    if not manifest:  # a run from before manifests is judged by name and type
        Path(run, files.MANIFEST).unlink()
    name = foreign.rstrip("/@")
    target = run / name
    if foreign.endswith("/"):
        target.mkdir(exist_ok=True)
        (target / "mine.txt").write_text("user notes\n")
    elif foreign.endswith("@"):
        target.unlink()
        target.symlink_to("/etc/hostname")
    else:
        target.write_text("user notes\n")
    result = cli("train", EXP2, *QUICK, "--out", run, "--force")
    assert result.exit_code == 2 and one_line(result), result.output
    assert f"also holds {name}" in result.stderr
    assert (target / "mine.txt").is_file() if foreign.endswith("/") else target.exists() or target.is_symlink()
    assert Path(run, "summary.json").is_file()  # nothing was cleared


@pytest.mark.parametrize("manifest", [True, False], ids=["manifest", "old-run"])
def test_force_replaces_a_run_with_everything_bpcli_wrote_in_it(run, manifest):
    assert cli("plot", run, "--format", "svg").exit_code == 0
    assert cli("animate", run, "--frames", "3").exit_code == 0
    Path(run, ".summary.json.tmp").write_text("left by a kill -9")  # bpcli's own temporary file
    if not manifest:
        Path(run, files.MANIFEST).unlink()
    result = cli("train", EXP2, *QUICK, "--out", run, "--force", "--no-plots")
    assert result.exit_code == 0, result.output
    assert not Path(run, "loss.svg").exists() and not Path(run, "descent.gif").exists()
    assert leftovers(run) == []


def test_tensorboard_event_files_are_listed_and_replaced_by_force():
    pytest.importorskip("tensorboard")
    args = ["--set", "log.tensorboard=true", "--no-plots", "--out", "board"]
    assert cli("train", EXP2, *QUICK, *args).exit_code == 0
    events = [p.name for p in Path("board").glob("events.out.tfevents.*")]
    assert events and set(events) <= set(json.loads(Path("board", files.MANIFEST).read_text())["written"])
    assert cli("train", EXP2, *QUICK, *args, "--force").exit_code == 0
    assert not set(events) & {p.name for p in Path("board").iterdir()}


# --------------------------------------------------------------------------- failures said as what they are


def test_a_full_disk_while_drawing_after_training_fails_the_run(monkeypatch):
    _savefig_fails_part_way(monkeypatch)
    result = cli("train", EXP2, *QUICK, "--out", "full")
    assert result.exit_code == 1 and one_line(result), result.output
    assert "No space left" in result.stderr and "recorded as failed" in result.stderr
    summary = json.loads(Path("full/summary.json").read_text())
    assert summary["status"] == "failed" and summary["steps"] == 20
    assert leftovers("full") == [] and not list(Path("full").glob("*.png"))


def _read_only(monkeypatch, folder):
    """What opening a file for writing in `folder` does when it is read-only (as root, chmod
    does not stop writes, so the refusal is made by hand)."""
    real = os.open

    def fake(path, flags, *args, **kwargs):
        if Path(path).parent.resolve() == Path(folder).resolve() and flags & (os.O_WRONLY | os.O_RDWR):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path, flags, *args, **kwargs)

    monkeypatch.setattr(files.os, "open", fake)


@pytest.mark.parametrize("command", ["plot", "resume"])
def test_a_read_only_run_is_said_to_be_read_only(run, monkeypatch, command):
    _read_only(monkeypatch, run)
    result = cli("plot", run) if command == "plot" else cli("train", "--resume", run, "--epochs", "30")
    assert result.exit_code == 2 and one_line(result), result.output
    assert "read-only" in result.stderr
    assert "still writing" not in result.stderr and "another --out" not in result.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only directory")
def test_a_chmod_read_only_run_is_said_to_be_read_only(run):
    run.chmod(0o555)
    try:
        result = cli("plot", run)
        assert result.exit_code == 2 and "read-only" in result.stderr, result.output
    finally:
        run.chmod(0o755)


@pytest.mark.parametrize("command", [
    ["train", EXP2, "--no-plots"], ["sweep", EXP2, "--grid", "lr=0.1"], ["rerun", "run"],
    ["animate", "run"], ["compare", "run", "run"], ["explain", "--expr", "J = x**2", "--at", "x=1"],
], ids=["train", "sweep", "rerun", "animate", "compare", "explain"])
@pytest.mark.parametrize("out", ["", "a" * 300, "outputs/" + "b" * 256 + "/c"], ids=["empty", "long", "long-part"])
def test_an_out_that_cannot_be_a_name_is_a_bad_argument(run, command, out):
    before = sorted(p.name for p in Path(".").iterdir())
    result = cli(*command, "--out", out)
    assert result.exit_code == 2 and one_line(result), result.output
    assert "--out" in result.stderr and ("current directory" in result.stderr if not out else
                                         "choose another --out" in result.stderr)
    assert sorted(p.name for p in Path(".").iterdir()) == before


# --------------------------------------------------------------------------- next free names, figure --out

CLAIM = ("import sys; from pathlib import Path; from bpcli.rundir.files import next_free\n"
         "for _ in range(25): print(next_free(Path('outputs'), sys.argv[1], sys.argv[2]))")


@pytest.mark.parametrize("prefix,suffix", [("run", ""), ("graph", ".png")], ids=["directories", "files"])
def test_processes_claiming_at_once_each_get_their_own_name(prefix, suffix):
    jobs = [subprocess.Popen([sys.executable, "-c", CLAIM, prefix, suffix], stdout=subprocess.PIPE, text=True)
            for _ in range(4)]
    claimed = [line for job in jobs for line in job.communicate()[0].split()]
    assert all(job.returncode == 0 for job in jobs)
    assert sorted(claimed) == sorted(f"outputs/{prefix}{n}{suffix}" for n in range(1, 101))
    assert all(Path(name).is_dir() if not suffix else Path(name).is_file() for name in claimed)


def test_a_name_taken_since_the_count_goes_to_the_next_number(monkeypatch):
    Path("outputs").mkdir()
    Path("outputs/graph5.svg").write_bytes(b"a figure drawn by hand")
    Path("outputs/run2").mkdir()
    assert files.next_free(Path("outputs"), "graph", ".png") == Path("outputs/graph6.png")
    assert files.next_free(Path("outputs"), "run") == Path("outputs/run3")
    # Another process creates graph7.png and run4 after this one counted: it takes the next number.
    Path("outputs/graph7.png").write_bytes(b"another process's")
    Path("outputs/run4").mkdir()
    monkeypatch.setattr(files, "_listdir", lambda root, elsewhere: [root / "graph6.png", root / "run3"])
    assert files.next_free(Path("outputs"), "graph", ".png") == Path("outputs/graph8.png")
    assert files.next_free(Path("outputs"), "run") == Path("outputs/run5")
    assert Path("outputs/graph7.png").read_bytes() == b"another process's"


def test_a_figure_out_refuses_a_file_without_force_a_directory_and_another_format():
    Path("mine.png").write_bytes(b"keep me")
    with pytest.raises(files.RunDirError, match="mine.png: already exists; write to --out NEW.png, or add --force"):
        files.check_figure_out(Path("mine.png"), False, ("png", "svg", "pdf"))
    files.check_figure_out(Path("mine.png"), True, ("png", "svg", "pdf"))
    Path("dir.png").mkdir()
    with pytest.raises(files.RunDirError, match="dir.png: is a directory; give a file in it"):
        files.check_figure_out(Path("dir.png"), True, ("png", "svg", "pdf"))
    with pytest.raises(files.RunDirError, match=r"give a file ending in \.png, \.svg or \.pdf"):
        files.check_figure_out(Path("figure.txt"), False, ("png", "svg", "pdf"))
    with pytest.raises(files.RunDirError, match=r"new/a.gifx: give a file ending in \.gif$"):
        files.check_figure_out(Path("new/a.gifx"), False, ("gif",))
    with pytest.raises(files.RunDirError, match="new: no such folder"):
        files.check_figure_out(Path("new/a.gif"), False, ("gif",), create_folder=False)
    assert not Path("new").exists()
    files.check_figure_out(Path("new/a.gif"), False, ("gif",))
    assert Path("new").is_dir() and not Path("new/a.gif").exists()
    assert Path("mine.png").read_bytes() == b"keep me"


@pytest.mark.parametrize("command", [["compare", "run", "other"], ["explain", "--expr", "J = x**2", "--at", "x=1"],
                                     ["animate", "run"]], ids=["compare", "explain", "animate"])
def test_every_figure_command_refuses_a_directory_and_an_existing_file_as_out(run, command):
    shutil.copytree(run, "other")
    suffix = ".gif" if command[0] == "animate" else ".png"
    Path("dir" + suffix).mkdir()
    result = cli(*command, "--out", "dir" + suffix, "--force")
    assert result.exit_code == 2 and one_line(result) and f"dir{suffix}: is a directory" in result.stderr
    Path("mine" + suffix).write_bytes(b"keep me")
    result = cli(*command, "--out", "mine" + suffix)
    assert result.exit_code == 2 and one_line(result) and "already exists" in result.stderr
    assert Path("mine" + suffix).read_bytes() == b"keep me"


def test_compare_claims_its_name_and_leaves_nothing_when_it_fails(run):
    shutil.copytree(run, "other")
    (Path("other") / "metrics.csv").write_text("step,epoch,loss,w,b\n1,1,oops,1,2\n")
    result = cli("compare", "run", "other")
    assert result.exit_code == 2 and one_line(result)
    assert not Path("outputs").exists() or list(Path("outputs").iterdir()) == []
    (Path("other") / "metrics.csv").write_bytes((run / "metrics.csv").read_bytes())
    Path("outputs").mkdir(exist_ok=True)
    Path("outputs/compare1.png").mkdir()  # taken, though not by a figure
    result = cli("compare", "run", "other")
    assert result.exit_code == 0 and result.stdout.strip() == "outputs/compare2.png"
