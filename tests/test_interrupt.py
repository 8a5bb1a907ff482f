"""Ctrl-C during training: exit 130, status "interrupted", and every logged row kept."""

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import CONFIGS


def test_ctrl_c_keeps_what_was_logged_and_exits_130():
    proc = subprocess.Popen(
        [sys.executable, "-m", "bpcli", "train", CONFIGS / "exp3.yaml", "--epochs", "100000000",
         "--log-every", "50", "--device", "cpu", "--no-plots"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    metrics = Path("outputs/run1/metrics.csv")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if metrics.is_file() and len(metrics.read_text().splitlines()) > 5:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    summary = json.loads(Path("outputs/run1/summary.json").read_text())
    assert summary["status"] == "interrupted"
    rows = list(csv.DictReader(metrics.open()))
    assert len(rows) >= 5
    steps = [int(r["step"]) for r in rows]
    assert steps == [1] + list(range(50, 50 * len(steps), 50))  # no row lost or torn
    assert summary["steps"] >= steps[-1]
