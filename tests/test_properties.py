"""Property-based: whatever the config (every kind, learning rates from 1e-8 to 1e30,
extreme data and initial values), bpcli ends with a documented exit code, a status that
agrees with it, and a run directory whose every file can be read back."""

import csv
import json
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import cli

MAGNITUDES = st.integers(-40, 310).map(lambda e: 10.0 ** e if e < 309 else 1.7e308)
SIGNED = st.builds(lambda m, sign: sign * m, MAGNITUDES, st.sampled_from([1.0, -1.0]))
SMALL = st.floats(-10, 10, allow_nan=False)
VALUE = st.one_of(SMALL, SIGNED)
LR = st.builds(lambda e, m: m * 10.0 ** e, st.integers(-8, 30), st.floats(1.0, 9.99))


@st.composite
def configs(draw):
    kind = draw(st.sampled_from(["scalar-sgd", "linear-gd", "nn-linear", "mlp"]))
    config = {"kind": kind, "device": "cpu", "dtype": draw(st.sampled_from(["float32", "float64"])),
              "seed": draw(st.integers(0, 5)),
              "train": {"lr": draw(LR), "epochs": draw(st.integers(1, 15)), "log_every": draw(st.integers(1, 6))}}
    source = draw(st.sampled_from(["inline", "synthetic", "function"] if kind == "mlp" else ["inline", "synthetic"]))
    if source == "inline":
        n = draw(st.integers(2, 6))
        config["data"] = {"source": "inline", "x": draw(st.lists(VALUE, min_size=n, max_size=n)),
                          "y": draw(st.lists(VALUE, min_size=n, max_size=n))}
    else:
        low = draw(VALUE)
        data = {"source": source, "n": draw(st.integers(2, 40)), "x_low": low,
                "x_high": low + abs(draw(VALUE)) + 1.0, "noise": abs(draw(st.one_of(st.just(0.0), VALUE)))}
        if source == "synthetic":
            data.update(true_w=draw(VALUE), true_b=0.0 if kind == "scalar-sgd" else draw(VALUE))
        config["data"] = data
    if kind == "mlp":
        config["model"] = {"hidden": draw(st.lists(st.integers(1, 4), min_size=1, max_size=2))}
    elif draw(st.booleans()):
        config["model"] = {"init_w": draw(VALUE)}
    if kind != "scalar-sgd" and "predict" not in config and draw(st.booleans()):
        config["predict"] = [draw(VALUE)]
    return config


def _readable(run):
    """Every file bpcli wrote in the run directory can be parsed; returns summary.json."""
    yaml.safe_load((run / "config.yaml").read_text())
    summary = json.loads((run / "summary.json").read_text())
    for name in ("metrics.csv", "data.csv", "curve.csv", "predictions.csv"):
        if (run / name).is_file():
            rows = list(csv.reader((run / name).open()))
            assert rows and all(len(row) == len(rows[0]) for row in rows), name
            if name != "predictions.csv":
                [float(cell) for row in rows[1:] for cell in row]
    return summary


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(config=configs(), plots=st.sampled_from([False, False, True]))
def test_any_config_ends_with_a_true_status_and_readable_files(write_config, config, plots):
    path = write_config(yaml.safe_dump(config))
    run = Path("outputs/prop")
    args = ["train", path, "--out", run, "--force"] + ([] if plots else ["--no-plots"])
    result = cli(*args)
    assert result.exit_code in (0, 1, 2), result.output
    assert "unexpected" not in result.stderr and "Traceback" not in result.output, result.output
    if result.exit_code == 2:
        assert len(result.stderr.strip().splitlines()) >= 1
        return
    summary = _readable(run)
    expected = {0: {"completed"}, 1: {"diverged", "failed"}}[result.exit_code]
    assert summary["status"] in expected, (summary["status"], result.output)
    if result.exit_code == 1:
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    redraw = cli("plot", run)
    assert redraw.exit_code == 0, redraw.output
