"""torch's thread count: one for small problems, --threads N, OMP_NUM_THREADS when set, recorded."""

import json
from pathlib import Path

import torch

from bpcli import threads
from conftest import CONFIGS, cli


def test_small_problems_take_one_thread_and_large_ones_torchs_default(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert threads.choose(None, 10_000) == (1, "small problem")
    assert threads.choose(None, 100_000_000) == (threads.DEFAULT, "torch's default")
    assert threads.choose(3, 10) == (3, "train.threads")


def test_omp_num_threads_is_honoured_when_set(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert threads.choose(None, 10) == (2, "OMP_NUM_THREADS")
    assert threads.choose(4, 10) == (4, "train.threads")  # the flag wins


def test_the_count_is_set_and_recorded_in_summary_json(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        result = cli("train", CONFIGS / "mlp.yaml", "--epochs", "5", "--out", "small", "--no-plots", "-q")
        assert result.exit_code == 0, result.output
        summary = json.loads(Path("small/summary.json").read_text())
        assert summary["threads"] == 1 and summary["threads_chosen_by"] == "small problem"
        result = cli("train", CONFIGS / "mlp.yaml", "--epochs", "5", "--threads", "2", "--out", "two", "--no-plots",
                     "-q")
        assert result.exit_code == 0, result.output
        assert json.loads(Path("two/summary.json").read_text())["threads"] == 2
        assert torch.get_num_threads() == 2
        swept = cli("sweep", CONFIGS / "exp2.yaml", "--grid", "lr=0.01,0.02", "--threads", "1", "--out", "s", "-q")
        assert swept.exit_code == 0, swept.output
        assert json.loads(Path("s/sweep.json").read_text())["threads"] == 1
    finally:
        torch.set_num_threads(before)


def test_threads_must_be_positive():
    result = cli("train", CONFIGS / "exp2.yaml", "--threads", "0", "--out", "zero")
    assert result.exit_code == 2 and "train.threads" in result.stderr
