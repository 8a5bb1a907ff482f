"""A damaged run directory, read by every command that reads one: one line, exit 2 (or a
clean success where the damage does not matter), never 'unexpected', nothing changed.

Each case damages one file of a small trained run in one way — a column dropped or moved,
a file cut short, bytes overwritten, the file replaced by a folder or by a link to a file
elsewhere — drawn from a seeded generator, so the cases vary but every failure reproduces.
"""

import csv
import hashlib
import io
import random
import shutil
from pathlib import Path

import pytest

from conftest import CONFIGS, cli

READ_FILES = ("metrics.csv", "summary.json", "config.yaml", "data.csv", "curve.csv", "checkpoint.pt")
DAMAGES = ("drop column", "swap columns", "truncate", "corrupt", "folder", "link")
COMMANDS = (("plot", "{run}"), ("animate", "{run}", "--frames", "3"), ("compare", "{run}", "{other}"),
            ("rerun", "{run}", "--verify"), ("train", "--resume", "{run}", "--epochs", "30"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two small exp2 runs, trained once for the module."""
    folder = tmp_path_factory.mktemp("runs")
    for name in ("run", "other"):
        result = cli("train", CONFIGS / "exp2.yaml", "--epochs", "20", "--log-every", "5", "--no-plots", "-q",
                     "--device", "cpu", "--out", folder / name)
        assert result.exit_code == 0, result.output
    return folder


def damage(path: Path, how: str, rng: random.Random, outside: Path) -> None:
    data = path.read_bytes()
    if how in ("drop column", "swap columns") and path.suffix == ".csv":
        rows = list(csv.reader(io.StringIO(data.decode())))
        i = rng.randrange(len(rows[0]))
        j = (i + 1 + rng.randrange(len(rows[0]) - 1)) % len(rows[0])
        for row in rows:
            if how == "drop column":
                del row[i]
            else:
                row[i], row[j] = row[j], row[i]
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(rows)
        path.write_text(out.getvalue())
    elif how in ("truncate", "drop column", "swap columns"):
        path.write_bytes(data[: rng.randrange(len(data))])
    elif how == "corrupt":
        at = rng.randrange(len(data))
        path.write_bytes(data[:at] + bytes(rng.randrange(256) for _ in range(8)) + data[at + 8:])
    elif how == "folder":
        path.unlink()
        path.mkdir()
    else:  # a link to a file elsewhere, holding something else
        path.unlink()
        path.symlink_to(outside)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).digest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


CASES = [(seed, READ_FILES[seed % len(READ_FILES)], DAMAGES[(seed // len(READ_FILES)) % len(DAMAGES)])
         for seed in range(len(READ_FILES) * len(DAMAGES))]


@pytest.mark.parametrize("seed, name, how", CASES, ids=[f"{n}-{h.replace(' ', '-')}-{s}" for s, n, h in CASES])
def test_every_command_on_a_damaged_run_ends_in_one_line_and_changes_nothing(trained, tmp_path, seed, name, how):
    rng = random.Random(seed)
    run, other = tmp_path / "run", tmp_path / "other"
    shutil.copytree(trained / "run", run)
    shutil.copytree(trained / "other", other)
    outside = tmp_path / "elsewhere.txt"
    outside.write_text("a file of the user's, outside the run\n")
    if not (run / name).is_file():
        pytest.skip(f"{name} is not written for this run")
    damage(run / name, how, rng, outside)
    for command in COMMANDS:
        before, before_outside = snapshot(run), outside.read_bytes()
        args = [a.format(run=run, other=other) for a in command]
        result = cli(*args)
        assert result.exit_code in (0, 1, 2), (args, result.exit_code, result.output)
        assert "unexpected" not in result.output, (args, result.output)
        if result.exit_code != 0:
            lines = [line for line in result.stderr.splitlines() if line.strip()]
            assert len(lines) == 1 and lines[0].startswith("error: "), (args, result.stderr)
        assert outside.read_bytes() == before_outside, args
        after = snapshot(run)
        # What a command writes is its own figures and the manifest that lists them (and a
        # resumed run's files, when it could resume); every other file is as it was.
        kept = {k: v for k, v in before.items() if not k.endswith((".png", ".gif")) and k != "manifest.json"}
        if command[0] == "train" and result.exit_code == 0:
            continue
        assert {k: after.get(k) for k in kept} == kept, (args, result.output)


@pytest.mark.parametrize("step", ["1000000000", "0", "2.5", "nan", "1"])  # beyond the run, before it, not whole, repeated
def test_a_step_that_cannot_be_the_runs_is_refused(trained, tmp_path, step):
    run = tmp_path / "run"
    shutil.copytree(trained / "run", run)
    lines = (run / "metrics.csv").read_text().splitlines(keepends=True)
    lines[2] = step + lines[2][lines[2].index(","):]  # the second logged row
    (run / "metrics.csv").write_text("".join(lines))
    for command in (("plot", run), ("animate", run), ("rerun", run, "--verify")):
        result = cli(*command)
        assert result.exit_code == 2 and result.stderr.startswith(f"error: {run}/metrics.csv: damaged: "), result.output
