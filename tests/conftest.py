import os
import signal
from pathlib import Path

# One intra-op thread, for this process and the bpcli processes the tests start: the test
# models hold a few hundred numbers, where a second thread only adds synchronisation, and
# on a busy two-core machine its spin-waits make a small MLP's step fifty times slower.
# Set before torch is imported; a value the caller chose is kept.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest
from typer.testing import CliRunner

from bpcli.cli import app
from bpcli.config import Override, load_config

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"

runner = CliRunner()


def cli(*args):
    """Invoke the CLI in-process; the result has exit_code, stdout, stderr and output."""
    return runner.invoke(app, [str(a) for a in args])


def config(name, **changes):
    """A shipped config (configs/<name>) on the CPU, with each keyword as a dotted override:
    train__lr=0.1 sets train.lr. device="cuda" moves it off the CPU."""
    overrides = [Override(path="device", value="cpu", origin="test")]
    overrides += [Override(path=k.replace("__", "."), value=v, origin="test") for k, v in changes.items()]
    return load_config(CONFIGS / name, overrides)


@pytest.fixture(autouse=True)
def _workdir(tmp_path, monkeypatch):
    # Every test runs in its own empty directory: outputs/run<N> lands there.
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BPCLI_DEBUG", raising=False)
    yield


@pytest.fixture
def write_config(tmp_path):
    """Write YAML text to a file in the test's directory and return its path."""

    def write(text, name="config.yaml"):
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


class InterruptAt:
    """An observer that sends this process SIGINT when step `step` is logged."""

    def __init__(self, step):
        self.step = step

    def on_start(self, *args):
        pass

    def on_log(self, row):
        if row["step"] == self.step:
            signal.raise_signal(signal.SIGINT)

    def on_progress(self, step):
        pass
