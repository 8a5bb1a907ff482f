"""Plots are drawn at the end of a run and redrawn from the run directory without torch."""

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import CONFIGS, cli

PNG = b"\x89PNG"


def test_train_draws_loss_and_fit_plots():
    assert cli("train", CONFIGS / "exp2.yaml", "--epochs", "30").exit_code == 0
    for name in ("loss.png", "fit.png"):
        assert Path("outputs/run1", name).read_bytes()[:4] == PNG


def test_plot_redraws_without_torch():
    assert cli("train", CONFIGS / "exp1.yaml", "--epochs", "5", "--no-plots").exit_code == 0
    assert not Path("outputs/run1/loss.png").exists()
    # A Python in which `import torch` fails must still plot.
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "sys.argv = ['bpcli', 'plot', 'outputs/run1']\n"
        "from bpcli.cli import main; main()"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [f"outputs/run1/{name}.png" for name in ("loss", "fit", "params", "landscape")]
    assert Path("outputs/run1/fit.png").read_bytes()[:4] == PNG


@pytest.mark.parametrize("fmt,magic", [("svg", b"<?xml"), ("pdf", b"%PDF")])
def test_plot_formats(fmt, magic):
    assert cli("train", CONFIGS / "exp2.yaml", "--epochs", "10", "--no-plots").exit_code == 0
    result = cli("plot", "outputs/run1", "--format", fmt)
    assert result.exit_code == 0
    assert Path(f"outputs/run1/loss.{fmt}").read_bytes()[:5].startswith(magic)
    assert Path(f"outputs/run1/fit.{fmt}").read_bytes()[:5].startswith(magic)


@pytest.mark.parametrize("missing", ["metrics.csv", "summary.json", "data.csv"])
def test_plot_names_a_missing_file(missing):
    assert cli("train", CONFIGS / "exp2.yaml", "--epochs", "10", "--no-plots").exit_code == 0
    Path("outputs/run1", missing).unlink()
    result = cli("plot", "outputs/run1")
    assert result.exit_code == 2
    assert f"missing {missing}" in result.stderr


def test_plot_rejects_a_corrupt_metrics_file():
    assert cli("train", CONFIGS / "exp2.yaml", "--epochs", "10", "--no-plots").exit_code == 0
    Path("outputs/run1/metrics.csv").write_text("step,epoch,loss\n1,1,oops\n")
    result = cli("plot", "outputs/run1")
    assert result.exit_code == 2 and "corrupt" in result.stderr


def test_params_plot_draws_every_parameter_of_a_many_feature_run():
    from bpcli.plots.params import params_plot
    from bpcli.rundir.run import read_run

    assert cli("train", CONFIGS / "diabetes.yaml", "--epochs", "20", "--no-plots").exit_code == 0
    name, fig = params_plot(read_run("outputs/run1"))
    drawn = sorted(ax.get_ylabel() for ax in fig.axes if ax.get_visible())
    # ten weights, each named by its column of the CSV file, and the bias; no val_loss
    features = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
    assert drawn == sorted([f"w[{name}]" for name in features] + ["b"])


def test_compare_needs_two_runs():
    assert cli("train", CONFIGS / "exp2.yaml", "--epochs", "5", "--out", "one", "-q", "--no-plots").exit_code == 0
    result = cli("compare", "one")
    assert result.exit_code == 2 and "compare draws two or more runs" in result.stderr and "bpcli plot one" in result.stderr


def test_plot_leaves_a_run_that_is_still_being_written_alone():
    from bpcli.rundir.files import claim, release

    assert cli("train", CONFIGS / "exp2.yaml", "--epochs", "5", "--out", "live", "-q", "--no-plots").exit_code == 0
    claim(Path("live"))  # as the training process holds it
    try:
        result = cli("plot", "live")
        assert result.exit_code == 2 and "still writing this run" in result.stderr
        assert not Path("live/loss.png").exists()
    finally:
        release(Path("live"))
    assert cli("plot", "live").exit_code == 0 and Path("live/loss.png").exists()


def test_a_large_sweep_with_no_divergence_claims_none():
    # Beyond 200 members the losses are a median and a band; the band is no diverged member.
    from bpcli.plots.sweep import sweep_figures

    result = cli("sweep", CONFIGS / "exp2.yaml", "--grid", "seed=0:250", "--epochs", "20", "--device", "cpu",
                 "--out", "big", "-q")
    assert result.exit_code == 0, result.output
    losses = dict(sweep_figures("big"))["losses"]
    labels = [t.get_text() for t in losses.axes[0].get_legend().get_texts()] if losses.axes[0].get_legend() else []
    assert not any("diverged" in label for label in labels), labels


def test_a_mini_batch_runs_loss_plot_draws_the_optimum_as_a_line_and_no_gap_panel():
    from bpcli.plots.run import figures
    from bpcli.rundir.run import read_run

    args = ["--batch-size", "4", "--lr", "0.02", "--epochs", "40", "--out", "mb", "-q", "--no-plots"]
    assert cli("train", CONFIGS / "longley.yaml", *args).exit_code == 0
    loss = dict(figures(read_run("mb")))["loss"]
    assert len(loss.axes) == 1  # batch losses are no gap to the whole data's optimum
    texts = [t.get_text() for t in loss.axes[0].get_legend().get_texts()]
    assert any(t.startswith("optimum's loss L*") and "rounding" not in t for t in texts), texts
