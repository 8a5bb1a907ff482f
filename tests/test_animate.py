"""`bpcli animate`: a run's descent as a GIF, from its run directory alone."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from bpcli import train
from bpcli.cli import animate as animate_cli
from bpcli.plots import animate as animate_lib
from conftest import CONFIGS, cli, config

SIZE = (800, 400)  # pixels of every frame: animate.SIZE inches at animate.DPI


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Small runs of every kind animate draws, trained once for this module (read, never written)."""
    root = tmp_path_factory.mktemp("runs")
    made = {
        "exp2": config("exp2.yaml", seed=3, train__lr=0.05, train__epochs=240, train__log_every=2),
        "exp1": config("exp1.yaml", model__init_w=-1.5, train__epochs=6),
        "exp3": config("exp3.yaml", train__lr=0.02, train__epochs=400, train__log_every=5),
        "diverged": config("exp2.yaml", seed=1, train__lr=1.6, train__log_every=1),
        "diabetes": config("diabetes.yaml", train__epochs=90, train__log_every=3),
        "mlp": config("mlp.yaml", train__epochs=20, train__log_every=5),
    }
    for name, cfg in made.items():
        train(cfg, out=root / name, plots=False)
    return root


def frames(path):
    """(frames as RGB arrays, their durations in ms) of a GIF."""
    image = Image.open(path)
    out, durations = [], []
    for i in range(image.n_frames):
        image.seek(i)
        out.append(np.asarray(image.convert("RGB")))
        durations.append(image.info["duration"])
    assert image.size == SIZE
    return out, durations


def rows(run):
    return len(Path(run, "metrics.csv").read_text().splitlines()) - 1


def copy(runs, name):
    return Path(shutil.copytree(runs / name, Path.cwd() / name))


def test_animate_writes_descent_gif_into_the_run(runs):
    run = copy(runs, "exp2")
    result = cli("animate", run)
    assert result.exit_code == 0, result.output
    gif = run / "descent.gif"
    assert result.stdout.startswith(f"{gif}: 60 frames, step 0 to 240, 12 fps")
    images, durations = frames(gif)
    assert len(images) == 60  # 121 logged rows and the start, sampled down to the default
    # GIF delays are whole hundredths of a second: 1/12 s is stored as 0.08 s. The last frame is held.
    assert all(abs(d - 1000 / 12) <= 5 for d in durations[:-1]) and durations[-1] == 2000
    # Every frame shows the descent a little further along.
    assert all((a != b).any() for a, b in zip(images, images[1:]))
    assert gif.stat().st_size < 400_000


@pytest.mark.parametrize("count,fps", [(2, 1), (17, 25), (122, 50)])
def test_frames_and_fps_are_the_users(runs, count, fps):
    result = cli("animate", runs / "exp2", "--out", "mine.gif", "--frames", count, "--fps", fps)
    assert result.exit_code == 0, result.output
    images, durations = frames("mine.gif")
    assert len(images) == count
    assert abs(durations[0] - 1000 / fps) <= 5


def test_a_run_with_fewer_states_than_frames_shows_each_once_and_says_how_to_log_more(runs):
    result = cli("animate", runs / "exp3", "--out", "a.gif", "--frames", 300)
    assert result.exit_code == 0, result.output
    assert len(frames("a.gif")[0]) == rows(runs / "exp3") + 1 == 82  # every logged step, and the start
    assert "--log-every" in result.stderr


@pytest.mark.parametrize("count,frames_", [(10_000, 60), (1_501, 60), (300, 299), (61, 60), (5_000, 2)])
def test_frames_are_log_spaced_and_cover_the_run(count, frames_):
    picked = animate_lib.pick_frames(count, frames_)
    assert len(picked) == frames_ and len(set(picked)) == frames_
    assert picked == sorted(picked) and picked[0] == 0 and picked[-1] == count - 1
    # Descent moves fastest at the start, so the early states get more of the frames: the
    # middle frame comes in the first half of the run, and in a long run, more than a quarter
    # of the frames show its first tenth.
    if frames_ > 2:
        assert picked[frames_ // 2] <= count / 2
    if count >= 10 * frames_:
        assert sum(i < count / 10 for i in picked) > frames_ / 4


def test_an_existing_gif_is_kept_without_force(runs):
    run = copy(runs, "exp2")
    assert cli("animate", run).exit_code == 0
    gif = run / "descent.gif"
    gif.write_bytes(b"mine")
    result = cli("animate", run, "--frames", 10)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "--force" in result.stderr
    assert gif.read_bytes() == b"mine"
    assert cli("animate", run, "--frames", 10, "--force").exit_code == 0
    assert len(frames(gif)[0]) == 10


def test_train_force_replaces_a_run_holding_its_gif(runs):
    run = copy(runs, "exp2")
    assert cli("animate", run, "--frames", 5).exit_code == 0
    result = cli("train", CONFIGS / "exp2.yaml", "--epochs", 5, "--out", run, "--force", "--no-plots")
    assert result.exit_code == 0, result.output
    assert not (run / "descent.gif").exists()


def damage_metrics(run):
    (run / "metrics.csv").write_text("step,epoch,loss,w,b\n1,1,oops,1,2\n")


def remove_summary(run):
    (run / "summary.json").unlink()


@pytest.mark.parametrize("args,says", [
    (["nowhere"], "no such run directory"),
    (["{run}", "--frames", "1"], "--frames 1: must be between 2 and 300"),
    (["{run}", "--frames", "301"], "--frames 301"),
    (["{run}", "--fps", "0"], "--fps 0: must be above 0"),
    (["{run}", "--fps", "60"], "at most 50"),
    (["{run}", "--out", "descent.png"], "ending in .gif"),
    (["{run}", "--out", "no/such/folder/a.gif"], "no such folder"),
    (["{run}", "--out", "."], "ending in .gif"),
])
def test_bad_input_is_one_line_and_exit_2(runs, args, says):
    result = cli("animate", *[a.format(run=runs / "exp2") for a in args])
    assert result.exit_code == 2
    assert says in result.stderr and result.stderr.count("\n") == 1 and "Traceback" not in result.output
    assert not list(Path.cwd().glob("**/*.gif"))


@pytest.mark.parametrize("damage,says", [(damage_metrics, "corrupt"), (remove_summary, "missing summary.json")])
def test_a_damaged_run_directory_is_one_line_and_exit_2(runs, damage, says):
    run = copy(runs, "exp2")
    damage(run)
    result = cli("animate", run)
    assert result.exit_code == 2 and says in result.stderr and result.stderr.count("\n") == 1
    assert not (run / "descent.gif").exists()


def test_one_weight_run_animates_the_loss_curve(runs):
    # exp1: y = w·x by per-sample SGD, 3 samples × 6 epochs; the landscape is the curve L(w).
    result = cli("animate", runs / "exp1", "--out", "exp1.gif")
    assert result.exit_code == 0, result.output
    assert len(frames("exp1.gif")[0]) == 18 + 1


def test_several_features_show_predictions_beside_the_loss(runs):
    result = cli("animate", runs / "diabetes", "--out", "d.gif")
    assert result.exit_code == 0, result.output
    assert len(frames("d.gif")[0]) == rows(runs / "diabetes") + 1 == 32


def test_a_one_column_csv_run(write_config, tmp_path):
    rng = np.random.default_rng(7)
    x = rng.uniform(-2, 5, 40)
    lines = ["size,price"] + [f"{a},{-1.5 * a + 3 + rng.normal(0, 0.3)}" for a in x]
    (tmp_path / "table.csv").write_text("\n".join(lines) + "\n")
    path = write_config("kind: nn-linear\ndevice: cpu\ndata: {source: csv, path: table.csv, target: price}\n"
                        "train: {lr: 0.02, epochs: 150, log_every: 1}\n")
    assert cli("train", path, "--out", "csv", "-q", "--no-plots").exit_code == 0
    result = cli("animate", "csv", "--frames", 40)
    assert result.exit_code == 0, result.output
    assert len(frames("csv/descent.gif")[0]) == 40


@pytest.mark.parametrize("name,why", [("exp2", ""), ("exp1", ""), ("exp3", ""), ("diverged", ""),
                                      ("diabetes", "no landscape over several inputs")])
def test_the_landscape_is_drawn_for_a_line_of_one_input(runs, name, why):
    from bpcli.rundir.run import read_run

    record = read_run(runs / name)
    columns = animate_lib._shape(record)
    states, _ = animate_lib._states(record, columns)
    assert animate_lib._Landscape.missing(record, columns, states) == why


def test_the_mlp_is_refused_in_one_line(runs):
    result = cli("animate", runs / "mlp", "--out", "m.gif")
    assert result.exit_code == 2
    assert "mlp" in result.stderr and "loss.png" in result.stderr and result.stderr.count("\n") == 1
    assert not Path("m.gif").exists()


def test_a_diverged_run_ends_at_its_last_finite_state(runs):
    summary = json.loads((runs / "diverged" / "summary.json").read_text())
    assert summary["status"] == "diverged"
    step = summary["divergence"]["step"]
    result = cli("animate", runs / "diverged", "--out", "d.gif")
    assert result.exit_code == 0, result.output
    assert f"diverged at step {step}" in result.stderr
    assert len(frames("d.gif")[0]) == step + 1  # the start and every step up to the divergence


def test_rows_that_are_no_longer_finite_are_left_out(runs):
    run = copy(runs, "exp2")
    lines = (run / "metrics.csv").read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[30].split(",")  # the row of a logged step whose loss and w are no longer finite
    row = [v if c in ("step", "epoch") else "nan" if c in ("w", "loss") else "1" for c, v in zip(header, cells)]
    broken = lines[:30] + [",".join(row)] + lines[31:40]
    (run / "metrics.csv").write_text("\n".join(broken) + "\n")
    result = cli("animate", run, "--frames", 100)
    assert result.exit_code == 0, result.output
    assert len(frames(run / "descent.gif")[0]) == 30  # the start and the 29 rows before the NaN
    assert "diverged" in result.stderr


def test_a_run_still_being_written_is_animated_so_far(runs):
    run = copy(runs, "exp2")
    summary = json.loads((run / "summary.json").read_text())
    for key in ("params", "optimum", "final_loss", "finished_at"):  # what a run records only at its end
        summary.pop(key)
    summary["status"] = "running"
    (run / "summary.json").write_text(json.dumps(summary))
    lines = (run / "metrics.csv").read_text().splitlines(keepends=True)
    (run / "metrics.csv").write_text("".join(lines[:21]) + lines[21][:9])  # a row half written
    result = cli("animate", run, "--frames", 100)
    assert result.exit_code == 0, result.output
    assert len(frames(run / "descent.gif")[0]) == 21
    assert "still running" in result.stderr


def test_a_run_that_has_logged_nothing_yet(runs):
    run = copy(runs, "exp2")
    header = (run / "metrics.csv").read_text().splitlines()[0]
    (run / "metrics.csv").write_text(header + "\n")  # the columns, and no row yet
    result = cli("animate", run)
    assert result.exit_code == 2 and "no logged step yet" in result.stderr


@pytest.mark.parametrize("train_section,named", [
    ({"optimizer": "sgd", "momentum": 0.9}, "sgd (momentum 0.9)"),
    ({"optimizer": "sgd", "momentum": 0.5, "nesterov": True}, "sgd (momentum 0.5, nesterov)"),
    ({"optimizer": "rmsprop", "alpha": 0.9, "schedule": "cosine"}, "rmsprop (alpha 0.9), cosine lr schedule"),
    ({"optimizer": "adam", "momentum": 0.0}, "adam, seed"),
    ({"optimizer": "sgd", "momentum": 0.0, "batch_size": 16}, "sgd, batches of 16, seed 3"),
    ({}, "lr 0.05, seed 3"),
])
def test_the_title_names_the_optimizer(runs, train_section, named):
    from bpcli.rundir.run import read_run

    run = copy(runs, "exp2")
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    for key in ("optimizer", "momentum", "nesterov", "batch_size"):
        cfg["train"].pop(key, None)
    cfg["train"].update(train_section)
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    assert named in animate_lib._heading(read_run(run))


def test_animate_never_imports_torch(runs):
    code = (
        "import sys; sys.modules['torch'] = None\n"
        f"sys.argv = ['bpcli', 'animate', {str(runs / 'exp2')!r}, '--out', 'a.gif', '--frames', '5']\n"
        "from bpcli.cli import main; main()"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert len(frames("a.gif")[0]) == 5


def test_the_cli_states_the_librarys_defaults_and_limits():
    assert (animate_cli.FRAMES, animate_cli.MAX_FRAMES, animate_cli.FPS, animate_cli.MAX_FPS) == (
        animate_lib.FRAMES, animate_lib.MAX_FRAMES, animate_lib.FPS, animate_lib.MAX_FPS)
