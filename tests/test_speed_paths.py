"""The fast paths give the same numbers as the plain ones (their speed is in bench/, not here)."""

from pathlib import Path

import pytest
import torch

from bpcli.build import build
from bpcli.lifecycle import train
from conftest import CONFIGS, cli, config


@pytest.mark.parametrize("seed,lr,epochs,n", [(0, 0.01, 3000, 100), (4, 0.5, 300, 1000), (9, 0.001, 2000, 50)])
def test_the_manual_fast_path_matches_autograd_to_1e_5(seed, lr, epochs, n):
    changes = dict(seed=seed, train__lr=lr, train__epochs=epochs, data__n=n, train__log_every=100)
    fast = train(config("exp2.yaml", train__grad="manual", **changes), save=False)
    auto = train(config("exp2.yaml", train__grad="autograd", **changes), save=False)
    for name in ("w", "b"):
        assert fast.params[name] == pytest.approx(auto.params[name], abs=1e-5)
    assert [row["step"] for row in fast.history] == [row["step"] for row in auto.history]
    for f, a in zip(fast.losses, auto.losses):
        assert f == pytest.approx(a, rel=1e-4, abs=1e-9)


def test_the_fast_path_gradient_is_the_hand_derived_formula():
    trainer = build(config("exp2.yaml", train__grad="manual", dtype="float64")).trainer
    _, formula = trainer.manual_backward(trainer.params(), trainer.batch(0))  # 2·mean(r·x), 2·mean(r)
    trainer.step(0)
    for name in ("w", "b"):
        assert trainer.gradients()[name].reshape(-1).tolist() == pytest.approx(
            formula[name].reshape(-1).tolist(), rel=1e-12)


def test_the_fast_path_reuses_its_buffers_and_skips_unlogged_losses():
    trainer = build(config("exp2.yaml", train__grad="manual")).trainer
    theta = trainer.params()["w"].data_ptr()
    grad = trainer.gradients()["w"].data_ptr()
    assert trainer.step(0, with_loss=False) is None
    assert trainer.step(0, with_loss=True) is not None
    assert trainer.params()["w"].data_ptr() == theta and trainer.gradients()["w"].data_ptr() == grad


def test_large_data_keeps_the_run_directory_small(tmp_path):
    result = train(config("exp2.yaml", train__grad="manual", data__n=300_000, train__epochs=50), tmp_path / "run")
    assert result.status == "completed"
    assert result.summary["data_csv_rows"] == {"written": 100_000, "of": 300_000}
    assert len((tmp_path / "run/data.csv").read_text().splitlines()) == 100_001
    assert (tmp_path / "run/landscape.png").is_file()


def test_auto_engine_is_eager_off_cuda_and_is_recorded(tmp_path):
    result = train(config("exp3.yaml", train__epochs=10), tmp_path / "run", plots=False)
    assert result.summary["engine"] == "eager"


def test_graph_engine_choice_follows_the_device_and_the_kind():
    from bpcli.engines import MAX_GRAPHS, choose

    cuda, cpu = torch.device("cuda", 0), torch.device("cpu")
    assert choose("auto", cuda, 1) == "graph" and choose("auto", cuda, MAX_GRAPHS + 1) == "eager"
    assert choose("auto", cpu, 1) == "eager" and choose("eager", cuda, 1) == "eager"
    assert choose("graph", cuda, 3) == "graph"
    for device, steps, expected in [(cpu, 1, "needs a CUDA device"), (cuda, MAX_GRAPHS + 1, "one per sample")]:
        with pytest.raises(Exception, match=expected):
            choose("graph", device, steps)
    # Under torchrun the gradients are all-reduced every step, outside any graph.
    assert choose("auto", cuda, 1, distributed=True) == "eager"
    with pytest.raises(Exception, match="under torchrun"):
        choose("graph", cuda, 1, distributed=True)


def test_asking_for_graphs_without_cuda_is_a_clear_error():
    result = cli("train", CONFIGS / "exp3.yaml", "--set", "train.engine=graph", "--device", "cpu")
    assert result.exit_code == 2
    assert "train.engine: graph needs a CUDA device" in result.stderr
    assert not Path("outputs").exists()
