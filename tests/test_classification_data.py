"""Data for classification: the generated two-class sets, CSV class labels, the shipped table.

The classification kinds are not needed: make_dataset(…, classify=True) is what a kind
that classifies calls, and these tests call it directly.
"""

import math

import pytest
import torch

from bpcli.data import SOURCES, make_dataset, targets_mismatch
from bpcli.errors import DataError

PLANAR = ["moons", "circles", "xor", "gauss", "spiral"]


def drawn(source, seed=0, dtype=torch.float64, **fields):
    """The set `source` draws with `fields`, from a generator seeded with `seed`."""
    cfg = SOURCES[source].config(source=source, **fields)
    return make_dataset(cfg, torch.Generator().manual_seed(seed), dtype, classify=True)


def one_line(excinfo):
    message = str(excinfo.value)
    assert "\n" not in message, message
    return message


# --------------------------------------------------------------------------- generated sets


@pytest.mark.parametrize("source", PLANAR)
def test_a_generated_set_has_two_features_two_classes_and_its_seed(source):
    data = drawn(source, n=101)
    assert data.x.shape == (101, 2) and data.y.shape == (101,)
    assert data.x.dtype == data.y.dtype == torch.float64
    assert data.classes == ["0", "1"] and data.feature_names == ["x1", "x2"] and data.true_params is None
    assert set(data.y.tolist()) == {0.0, 1.0}
    assert bool(torch.isfinite(data.x).all())
    again, other = drawn(source, n=101), drawn(source, seed=1, n=101)
    assert torch.equal(again.x, data.x) and torch.equal(again.y, data.y)
    assert not torch.equal(other.x, data.x)


@pytest.mark.parametrize("source", PLANAR)
def test_a_generated_set_is_drawn_in_the_runs_dtype(source):
    data = drawn(source, dtype=torch.float32)
    assert data.x.dtype == data.y.dtype == torch.float32


@pytest.mark.parametrize("source", ["moons", "circles", "gauss", "spiral"])
def test_the_first_class_gets_half_the_points_rounded_down(source):
    data = drawn(source, n=7)
    assert int((data.y == 0).sum()) == 3 and int((data.y == 1).sum()) == 4


def test_the_classes_are_shuffled_together():
    # The rows are shuffled, and each point keeps its label: the upper moon (class 0) is y ≥ 0.
    data = drawn("moons", noise=0.0, n=40)
    assert data.y[:20].sum() not in (0, 20)
    assert bool((data.x[data.y == 0, 1] >= -1e-12).all())


def test_moons_without_noise_lie_on_their_arcs():
    data = drawn("moons", noise=0.0, n=60)
    x1, x2 = data.x[:, 0], data.x[:, 1]
    upper, lower = data.y == 0, data.y == 1
    # Class 0 on the upper half of the unit circle around (0, 0), class 1 on the lower half
    # of the unit circle around (1, 1/2).
    assert torch.allclose(x1[upper] ** 2 + x2[upper] ** 2, torch.ones(30, dtype=torch.float64))
    assert bool((x2[upper] >= -1e-12).all())
    assert torch.allclose((x1[lower] - 1) ** 2 + (x2[lower] - 0.5) ** 2, torch.ones(30, dtype=torch.float64))
    assert bool((x2[lower] <= 0.5 + 1e-12).all())
    # Both ends of each arc are included (linspace over [0, π]).
    assert {(-1.0, 0.0), (1.0, 0.0)} <= {(round(a, 9) + 0.0, round(b, 9) + 0.0) for a, b in data.x[upper].tolist()}


def test_circles_without_noise_lie_on_their_radii():
    data = drawn("circles", noise=0.0, n=50, factor=0.3)
    radius = data.x.norm(dim=1)
    assert torch.allclose(radius[data.y == 0], torch.ones(25, dtype=torch.float64))
    assert torch.allclose(radius[data.y == 1], torch.full((25,), 0.3, dtype=torch.float64))
    # Evenly spaced over a turn, no angle twice (2π would repeat 0).
    angles = torch.atan2(data.x[data.y == 0, 1], data.x[data.y == 0, 0]).sort().values
    assert torch.allclose(angles.diff(), torch.full((24,), 2 * math.pi / 25, dtype=torch.float64))


def test_circles_default_inner_radius_is_a_half():
    data = drawn("circles", noise=0.0)
    assert torch.allclose(data.x[data.y == 1].norm(dim=1), torch.full((50,), 0.5, dtype=torch.float64))


def test_xor_labels_follow_the_sign_of_x1_times_x2():
    data = drawn("xor", noise=0.0, n=500)
    assert torch.equal(data.y, (data.x[:, 0] * data.x[:, 1] > 0).to(torch.float64))
    assert bool((data.x.abs() >= 0.06).all()) and bool((data.x.abs() <= 1.06).all())
    # With noise, the labels stay those of the points before the noise moved them.
    clean, noisy = drawn("xor", noise=0.0, n=500), drawn("xor", noise=0.3, n=500)
    assert torch.equal(clean.y, noisy.y)
    assert not torch.equal(noisy.y, (noisy.x[:, 0] * noisy.x[:, 1] > 0).to(torch.float64))


def test_gauss_without_noise_sits_on_its_two_centres():
    data = drawn("gauss", noise=0.0, n=10)
    assert torch.equal(data.x[data.y == 0], torch.full((5, 2), -1.0, dtype=torch.float64))
    assert torch.equal(data.x[data.y == 1], torch.full((5, 2), 1.0, dtype=torch.float64))
    spread = drawn("gauss", noise=0.5, n=4000)
    assert float(spread.x[spread.y == 1].std(0).mean()) == pytest.approx(0.5, abs=0.03)


def test_spiral_without_noise_winds_its_arms_half_a_turn_apart():
    data = drawn("spiral", noise=0.0, n=100)
    for label, phase in ((0, math.pi), (1, 0.0)):
        arm = data.x[data.y == label]
        r = arm.norm(dim=1)
        # (r·sin t, r·cos t) with t = 1.75·2π·r + phase, r = 1/50, 2/50, …, 1.
        assert torch.allclose(r.sort().values, torch.arange(1, 51, dtype=torch.float64) / 50)
        t = 1.75 * 2 * math.pi * r + phase
        assert torch.allclose(arm, torch.stack([r * torch.sin(t), r * torch.cos(t)], 1), atol=1e-12)


def test_noise_moves_the_same_points_along_the_same_directions():
    # The noise is drawn whatever its size: a sweep over data.noise scales one draw.
    small, large = drawn("moons", noise=0.1), drawn("moons", noise=0.2)
    clean = drawn("moons", noise=0.0)
    assert torch.equal(small.y, clean.y)
    assert torch.allclose(large.x - clean.x, 2 * (small.x - clean.x))


def test_a_draw_with_one_class_is_refused():
    for seed in range(50):  # two points in the same class pair of quadrants: a quarter of the seeds
        try:
            drawn("xor", seed=seed, n=2, noise=0.0)
        except DataError as exc:
            assert "\n" not in str(exc)
            assert "all 2 points drawn for source: xor fall in class" in str(exc)
            assert "data.n" in str(exc) and "seed" in str(exc)
            return
    pytest.fail("no seed drew a single class")


def test_noise_that_overflows_the_dtype_is_refused():
    with pytest.raises(DataError) as excinfo:
        drawn("moons", dtype=torch.float32, noise=3e38)
    assert "lower data.noise" in one_line(excinfo) and "float32" in one_line(excinfo)
    with pytest.raises(DataError, match="data.noise: 1e[+]39 is beyond float32"):
        drawn("circles", dtype=torch.float32, noise=1e39)


@pytest.mark.parametrize("fields,expected", [
    ({"noise": -0.1}, "noise"), ({"n": 1}, "n"), ({"factor": 1.0}, "factor"), ({"factor": -0.5}, "factor"),
])
def test_impossible_fields_are_refused_by_the_config(fields, expected):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=expected):
        SOURCES["circles"].config(**fields)


@pytest.mark.parametrize("source", PLANAR)
def test_a_generated_set_needs_a_kind_that_classifies(source):
    cfg = SOURCES[source].config()
    with pytest.raises(DataError) as excinfo:
        make_dataset(cfg, torch.Generator().manual_seed(0), torch.float32)
    assert one_line(excinfo) == (f"data: source: {source} draws class labels and needs a classification kind "
                                 "(logistic, softmax, or mlp with a classification loss)")


@pytest.mark.parametrize("source", ["synthetic", "function", "inline"])
def test_a_numeric_source_is_refused_to_a_kind_that_classifies(source):
    cfg = SOURCES[source].config(**({"x": [1.0, 2.0], "y": [0.0, 1.0]} if source == "inline" else {}))
    with pytest.raises(DataError) as excinfo:
        make_dataset(cfg, torch.Generator().manual_seed(0), torch.float32, classify=True)
    assert f"source: {source} has numeric targets" in one_line(excinfo)
    assert targets_mismatch(source, classify=False) is None


def test_the_regression_sources_are_inferred_as_before():
    from bpcli.data import source_of

    assert source_of({"x": [1], "y": [2]}) == "inline"
    assert source_of({"path": "a.csv"}) == "csv"
    assert source_of({"fn": "sin"}) == "function"
    assert source_of({"n": 10}) == "synthetic"
    assert source_of({"source": "moons"}) == "moons"


# --------------------------------------------------------------------------- CSV class labels


def read_csv(tmp_path, text, classify=True, seed=0, dtype=torch.float64, **fields):
    """make_dataset on a CSV file holding `text`, with data fields `fields` (target defaults to y)."""
    path = tmp_path / "table.csv"
    path.write_text(text, encoding="utf-8")
    cfg = SOURCES["csv"].config(source="csv", path=str(path), target=fields.pop("target", "y"), **fields)
    return make_dataset(cfg, torch.Generator().manual_seed(seed), dtype, classify=classify)


def refused_csv(tmp_path, text, *expected, **fields):
    """The one-line DataError that reading `text` as class labels raises, holding every piece."""
    with pytest.raises(DataError) as excinfo:
        read_csv(tmp_path, text, **fields)
    message = one_line(excinfo)
    assert str(tmp_path / "table.csv") in message
    for piece in expected:
        assert piece in message, (piece, message)
    return message


def test_integer_labels_are_class_indices_in_numeric_order(tmp_path):
    data = read_csv(tmp_path, "a,b,y\n1,2,10\n3,4,2\n5,6,2\n7,8,-1\n9,0,10.0\n")
    # -1 < 2 < 10 as numbers (as text "10" would sort before "2"); 10.0 is the class 10.
    assert data.classes == ["-1", "2", "10"]
    assert data.y.tolist() == [2.0, 1.0, 1.0, 0.0, 2.0]
    assert data.y.dtype == torch.float64 and data.x.shape == (5, 2)
    assert data.x[:, 0].tolist() == [1.0, 3.0, 5.0, 7.0, 9.0]
    assert data.feature_names == ["a", "b"] and data.target_name == "y"


def test_text_labels_in_alphabetical_order_make_yes_the_positive_class(tmp_path):
    data = read_csv(tmp_path, 'x,y\n1,yes\n2,no\n3," yes"\n4,no\n', dtype=torch.float32)
    assert data.classes == ["no", "yes"]
    assert data.y.tolist() == [1.0, 0.0, 1.0, 0.0] and data.y.dtype == torch.float32
    ordered = read_csv(tmp_path, "x,y\n1,beta\n2,Alpha\n3,gamma\n4,alpha\n")
    assert ordered.classes == ["Alpha", "alpha", "beta", "gamma"]  # alphabetical, not A–Z before a–z


def test_raw_rows_carry_class_indices_and_the_splits_keep_them(tmp_path):
    rows = "".join(f"{i},{'abc'[i % 3]}\n" for i in range(30))
    data = read_csv(tmp_path, "x,y\n" + rows, val_fraction=0.2, seed=3)
    assert data.classes == ["a", "b", "c"]
    for split, (x, y) in data.splits().items():
        raw_x, raw_y = data.as_read(split)
        assert torch.equal(raw_y, y) and raw_y.dtype == torch.float64
        assert torch.equal(y, (x[:, 0] % 3))  # row i is class i mod 3, wherever the split put it
    assert len(data.y) == 24 and len(data.y_val) == 6


def test_standardising_the_features_leaves_the_class_indices_alone(tmp_path):
    data = read_csv(tmp_path, "x,y\n1,b\n2,a\n5,b\n9,a\n", standardize="features")
    assert data.y.tolist() == [1.0, 0.0, 1.0, 0.0]
    assert float(data.x.mean()) == pytest.approx(0.0, abs=1e-12)
    assert data.scaling["y_mean"] == 0.0 and data.scaling["y_std"] == 1.0


def test_standardize_all_is_refused_for_class_labels(tmp_path):
    refused_csv(tmp_path, "x,y\n1,b\n2,a\n", "data.standardize: all", "class labels", "column 'y'",
                "use data.standardize: features", standardize="all")


def test_a_target_of_one_class_is_refused(tmp_path):
    refused_csv(tmp_path, "x,y\n1,cat\n2,cat\n3,cat\n", "column 'y' holds one class, 'cat'", "at least two")
    # Also when drop_invalid leaves a single class: the other's rows held NaN.
    refused_csv(tmp_path, "x,y\n1,1\nnan,0\n3,1\n", "holds one class, '1'", "1 dropped", drop_invalid=True)


def test_a_class_held_out_entirely_is_refused_with_the_remedy(tmp_path):
    # One row of class 'rare' among 20: some seed puts it in the validation split.
    text = "x,y\n" + "".join(f"{i},common\n" for i in range(19)) + "19,rare\n"
    for seed in range(100):
        try:
            data = read_csv(tmp_path, text, val_fraction=0.3, seed=seed)
        except DataError as exc:
            message = str(exc)
            assert "\n" not in message and str(tmp_path / "table.csv") in message
            assert "class 'rare' of column 'y' has no row in the training split" in message
            assert "data.val_fraction: 0.3" in message and "all 1 of its rows" in message
            assert "smaller data.val_fraction or another seed" in message
            return
        assert data.classes == ["common", "rare"] and "rare" not in data.y_val.tolist()
    pytest.fail("no seed held the rare class out")


def test_labels_mixing_numbers_and_text_name_a_line_of_each(tmp_path):
    refused_csv(tmp_path, "x,y\n1,no\n2,no\n3,1\n4,yes\n", "column 'y' mixes numbers and text",
                "line 4 holds the number '1'", "line 2 the text 'no'", "every label as a number or every label as text")


@pytest.mark.parametrize("text,expected", [
    ("x,y\n1,a\n2,\n3,b\n", ["line 3, column 'y' is empty", "give every row a class label"]),
    ("x,y\n1,0\n2,0.5\n3,1\n", ["line 3, column 'y': '0.5' is not a whole number"]),
    ("x,y\n1,a\nnope,b\n", ["line 3, column 'x': 'nope' is not a number", "make every cell of data.features a number"]),
    ("x,y\n1,a\n2,nan\n", ["line 3, column 'y' is nan", "data.drop_invalid"]),
])
def test_other_broken_labels_get_one_line(tmp_path, text, expected):
    refused_csv(tmp_path, text, *expected)


def test_missing_labels_are_dropped_with_drop_invalid(tmp_path):
    data = read_csv(tmp_path, "x,y\n1,a\n2,nan\n3,b\n4,inf\n", drop_invalid=True)
    assert data.classes == ["a", "b"] and data.y.tolist() == [0.0, 1.0]
    assert data.notes == ["dropped 2 rows holding NaN or infinite values"]


def test_a_numeric_target_reads_as_before_without_classify(tmp_path):
    data = read_csv(tmp_path, "x,y\n1,0.5\n2,1.5\n", classify=False)
    assert data.classes is None and data.y.tolist() == [0.5, 1.5]
    with pytest.raises(DataError, match="line 2, column 'y': 'no' is not a number"):
        read_csv(tmp_path, "x,y\n1,no\n2,yes\n", classify=False)


# --------------------------------------------------------------------------- the shipped table


def test_the_shipped_penguins_table_loads_as_three_classes():
    from conftest import CONFIGS

    path = CONFIGS / "data" / "penguins.csv"
    cfg = SOURCES["csv"].config(source="csv", path=str(path), target="species", standardize="features",
                                val_fraction=0.2)
    data = make_dataset(cfg, torch.Generator().manual_seed(0), torch.float32, classify=True)
    assert data.classes == ["Adelie", "Chinstrap", "Gentoo"]
    assert data.feature_names == ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
    assert len(data.y) + len(data.y_val) == 342 and len(data.y_val) == 68
    y = torch.cat([data.y, data.y_val])
    assert torch.bincount(y.long()).tolist() == [151, 68, 123]
    assert data.notes == []  # the rows with missing values were left out of the file
    # The first row as read: an Adelie with a 39.1 mm bill.
    whole = make_dataset(cfg.model_copy(update={"val_fraction": 0.0, "standardize": "none"}),
                         torch.Generator().manual_seed(0), torch.float64, classify=True)
    assert whole.x[0].tolist() == [39.1, 18.7, 181.0, 3750.0] and whole.y[0] == 0.0


# --------------------------------------------------------------------------- through the CLI and the run files


def test_a_regression_kind_on_a_generated_set_stops_in_one_line(write_config):
    from conftest import cli

    config = write_config("kind: linear-gd\ndevice: cpu\ndata:\n  source: moons\n  n: 20\n")
    result = cli("train", config, "--out", "run", "-q")
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == ("error: data: source: moons draws class labels and needs a classification "
                                     "kind (logistic, softmax, or mlp with a classification loss)")


def test_class_indices_go_through_data_csv_unchanged(tmp_path):
    import csv

    from bpcli.rundir.run import write_data

    data = drawn("xor", n=30, dtype=torch.float32)
    write_data(tmp_path, data.x.tolist(), data.y.tolist())
    with open(tmp_path / "data.csv", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["x[0]", "x[1]", "y"]
    assert [float(r[2]) for r in rows[1:]] == data.y.tolist() and {r[2] for r in rows[1:]} == {"0.0", "1.0"}
