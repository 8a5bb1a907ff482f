"""compare's inputs: each run once, no more runs than colours, and a run still training
named as such (issue 20's compare cases)."""

import json
import shutil
from pathlib import Path

import pytest

from conftest import CONFIGS, cli


@pytest.fixture
def run():
    assert cli("train", CONFIGS / "exp2.yaml", "--epochs", "30", "--out", "a", "-q", "--no-plots").exit_code == 0
    return Path("a")


@pytest.mark.parametrize("again", ["a", "./a", "a/", "../{cwd}/a"])
def test_the_same_run_twice_is_refused_in_one_line(run, again):
    again = again.format(cwd=Path.cwd().name)
    result = cli("compare", "a", again)
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "is given twice" in result.stderr and not list(Path("outputs").glob("compare*.png"))


@pytest.mark.parametrize("count, refused", [(20, False), (21, True), (50, True)])
def test_more_runs_than_colours_are_refused(run, count, refused):
    for i in range(1, count):
        shutil.copytree(run, f"r{i}")
    result = cli("compare", "a", *(f"r{i}" for i in range(1, count)))
    assert (result.exit_code == 2) == refused, result.output
    if refused:
        assert f"at most 20 runs" in result.stderr and f"was given {count}" in result.stderr


def test_a_run_still_training_is_named_as_such(run):
    assert cli("train", CONFIGS / "exp2.yaml", "--epochs", "60", "--out", "b", "-q", "--no-plots").exit_code == 0
    summary = json.loads(Path("b/summary.json").read_text())
    for key in ("params", "final_loss", "finished_at"):  # as summary.json reads while the run trains
        summary.pop(key, None)
    summary["status"] = "running"
    Path("b/summary.json").write_text(json.dumps(summary))
    result = cli("compare", "a", "b")
    assert result.exit_code == 0, result.output
    assert "b is still training" in result.stderr and "is not a line" not in result.stderr
