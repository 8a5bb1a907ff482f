"""Data that cannot mean what it says is refused before training, in one line that names
where the problem is and how to fix it; data that can is read as the README documents."""

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import CONFIGS, cli


def csv_yaml(csv_name, **data):
    """A linear-gd config on the CPU reading `csv_name`, with extra data fields."""
    fields = "".join(f"  {k}: {json.dumps(v)}\n" for k, v in data.items())
    return (f"kind: linear-gd\ndevice: cpu\ndata:\n  source: csv\n  path: {csv_name}\n{fields}"
            "train:\n  epochs: 20\n  log_every: 10\n")


def refused(result, *expected):
    """Exit 2, one line on stderr holding every expected piece, no traceback or crash."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "unexpected" not in result.output and "Traceback" not in result.output
    assert "MKL" not in result.output and "oneDNN" not in result.output
    for piece in expected:
        assert piece in lines[0], (piece, lines[0])
    return lines[0]


# --------------------------------------------------------------------------- CSV files


@pytest.mark.parametrize(
    "text,data,expected",
    [
        # a duplicated column name that the run would use
        ("a,a,y\n1,2,3\n2,3,5\n3,4,8\n", {"target": "y"}, ["line 1", "'a'", "cells 1, 2"]),
        ("y,b,y\n1,2,3\n2,3,5\n3,4,8\n", {"target": "y"}, ["line 1", "'y'", "cells 1, 3"]),
        ("p,q,p,p,t\n1,2,3,4,5\n2,3,4,5,6\n3,4,5,6,8\n", {"target": "t", "features": ["q", "p"]},
         ["line 1", "3 columns 'p'", "cells 1, 3, 4"]),
        # a used column without a name (pandas writes its index so)
        (",a,y\n0,1,2\n1,2,4\n2,3,7\n", {"target": "y"}, ["line 1, cell 1 has no column name"]),
        # rows with more or fewer cells than the header, in used and unused columns
        ("a,b,y\n1,2,3\n2,3,5,9\n3,4,8\n", {"target": "y"}, ["line 3 has 4 cells, the header has 3"]),
        ("a,b,y\n1,2,3\n2,3,5,9\n3,4,8\n", {"target": "y", "features": ["a"]}, ["line 3 has 4 cells"]),
        ("a,b,y\n1,2,3\n2,3,5\n3,4\n", {"target": "b", "features": ["a"]}, ["line 4 has 2 cells, the header has 3"]),
        ("a,b,y\n1,2\n2,3\n3,4\n", {"target": "b", "features": ["a"]},
         ["3 rows with the wrong number of cells", "line 2 has 2 cells", "line 4 has 2 cells"]),
        ("a;b;y\n1;2;3\n\n2;3;5;;\n3;4;8\n", {"target": "y", "delimiter": ";"}, ["line 4 has 5 cells"]),
        # the target also an input, a feature twice
        ("a,b,y\n1,2,3\n2,3,5\n3,4,8\n", {"target": "y", "features": ["a", "y"]},
         ["data.features lists the target 'y'"]),
        ("a,b,y\n1,2,3\n2,3,5\n3,4,8\n", {"target": "y", "features": ["b", "a", "b"]},
         ["data.features lists 'b' more than once"]),
        # header: false takes numbers, within the file's width
        ("1,2,3\n2,3,5\n3,4,8\n", {"header": False, "target": "y"},
         ["no column 'y' for data.target", "numbered 0 to 2"]),
        ("1,2,3\n2,3,5\n3,4,8\n", {"header": False, "target": 3}, ["no column '3'", "numbered 0 to 2"]),
        ("1,2,3\n2,3,5\n3,4,8\n", {"header": False, "target": 2, "features": [0, 7]},
         ["no column '7' for data.features"]),
        # a header of numbers is probably data
        ("1,2,3\n2,3,5\n3,4,8\n", {"target": "y"}, ["look like numbers", "set data.header: false"]),
        # a cell that is not a number, with its true line after a blank line
        ("x,y\n1,2\n\n3,4\n5,1_000\n", {"target": "y"}, ["line 5, column 'y': '1_000' is not a number"]),
        ("x,y\n1,2\n\n3,nan\n5,6\n", {"target": "y"}, ["line 4, column 'y' is nan (1 such rows)"]),
        ("x,y\n1,2\n3,4\n5,1e999\n6,-1e400\n", {"target": "y"},
         ["line 4, column 'y' is inf", "'1e999' overflows float64", "(2 such rows)"]),
        # bytes that are not UTF-8, in a used or an unused column
        (b"a,b,y\n1,2,3\n2,\xe9t\xe9,5\n3,4,8\n", {"target": "y", "features": ["a"]},
         ["line 3 is not UTF-8 text"]),
        (b"a,\xe9,y\n1,2,3\n2,3,5\n", {"target": "y"}, ["line 1 is not UTF-8 text"]),
        # an unterminated quote: the row is named by the line it starts on
        ('x,y\n1,2\n2,"3\n3,4\n', {"target": "y"}, ["line 3, column 'y'"]),
    ],
)
def test_a_table_that_cannot_mean_what_it_says_is_refused(tmp_path, write_config, text, data, expected):
    path = tmp_path / "table.csv"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    refused(cli("train", write_config(csv_yaml("table.csv", **data)), "--no-plots"), "table.csv", *expected)


@pytest.mark.parametrize(
    "rows,fraction,train,held",
    [(3, 0.5, 1, 2), (2, 0.5, 1, 1), (10, 0.01, 10, 0), (10, 0.9, 1, 9), (5, 0.7, 1, 4)],
)
def test_a_split_must_leave_two_training_rows_and_one_to_validate(tmp_path, write_config, rows, fraction,
                                                                  train, held):
    lines = "x,y\n" + "".join(f"{i},{2 * i + 1}\n" for i in range(rows))
    (tmp_path / "t.csv").write_text(lines)
    config = write_config(csv_yaml("t.csv", target="y", val_fraction=fraction))
    line = refused(cli("train", config, "--no-plots"), "cannot give a validation split",
                   f"leave {train} to train on and {held} to validate")
    if rows >= 3:
        assert f"with {rows} rows, use" in line


def test_a_split_after_dropped_rows_says_so(tmp_path, write_config):
    (tmp_path / "t.csv").write_text("x,y\n1,2\n2,nan\n3,inf\n4,5\n5,6\n")
    config = write_config(csv_yaml("t.csv", target="y", val_fraction=0.5, drop_invalid=True))
    refused(cli("train", config), "3 usable rows (2 dropped for NaN or infinite values)")


def test_the_smallest_split_the_rule_allows_trains(tmp_path, write_config):
    (tmp_path / "t.csv").write_text("x,y\n1,3\n2,5\n3,7\n")
    config = write_config(csv_yaml("t.csv", target="y", val_fraction=0.34))
    assert cli("train", config, "--out", "run", "-q", "--no-plots").exit_code == 0
    assert json.loads(Path("run/summary.json").read_text())["samples"] == {"train": 2, "val": 1}


@pytest.mark.parametrize("value,count", [("1e39", 1), ("-3.5e38", 1), ("4e38", 3), ("1e300", 2)])
def test_csv_cells_beyond_float32_are_refused_with_their_line(tmp_path, write_config, value, count):
    rows = [f"{i},{2 * i}" for i in range(6)]
    for k in range(count):
        rows[2 + k] = f"{value},{2 + k}" if k % 2 else f"{2 + k},{value}"
    (tmp_path / "t.csv").write_text("x,y\n\n" + "\n".join(rows) + "\n")  # a blank line 2
    config = write_config(csv_yaml("t.csv", target="y"))
    refused(cli("train", config), "line 5, column 'y'", "beyond float32's range",
            f"({count} such cell{'s' if count > 1 else ''})", "use dtype: float64")
    # float64 holds the same file: the data are built (what training makes of them is not
    # the data's business)
    result = cli("train", config, "--set", "dtype=float64", "--epochs", "1", "--out", "run", "-q", "--no-plots")
    assert result.exit_code != 2, result.output


@pytest.mark.parametrize("dtype,value", [("float64", "1e200"), ("float64", "-1e160")])
def test_a_column_too_wide_to_standardise_is_refused(tmp_path, write_config, dtype, value):
    (tmp_path / "t.csv").write_text(f"a,y\n1,2\n{value},1\n3,4\n-3e38,5\n")
    config = write_config(csv_yaml("t.csv", target="y", standardize="features") + f"dtype: {dtype}\n")
    refused(cli("train", config), "column 'a' spans too wide a range to standardise", dtype)


def test_a_million_bad_cells_get_a_short_line_with_a_count(tmp_path, write_config):
    # 100 000 rows with two bad used cells each, one bad unused cell, and every 10th row short.
    with open(tmp_path / "bad.csv", "w") as fh:
        fh.write("a,b,note,y\n")
        fh.writelines("1\n" if i % 10 == 0 else f"x{i},1,?,-\n" for i in range(100_000))
    config = write_config(csv_yaml("bad.csv", target="y", features=["a", "b"]))
    line = refused(cli("train", config), "180000 cells that are not numbers",
                   "10000 rows with the wrong number of cells", "the first 3: line 2 has 1 cells",
                   "line 3, column 'a': 'x1' is not a number", "line 3, column 'y': '-' is not a number")
    assert len(line) < 500


# --------------------------------------------------------------------------- as documented


def _linear_table(header):
    """Columns c0, c1, c2 where c2 = 3·c0 − 2 and c1 is unrelated."""
    rng = np.random.default_rng(5)
    c0, c1 = rng.uniform(-1, 1, 30), rng.uniform(-1, 1, 30)
    body = "".join(f"{a:.6f},{b:.6f},{3 * a - 2:.6f}\n" for a, b in zip(c0, c1))
    return (header + body) if header else body


@pytest.mark.parametrize("header", [True, False])
def test_a_byte_order_mark_is_not_part_of_the_first_column(tmp_path, write_config, header):
    (tmp_path / "t.csv").write_bytes(b"\xef\xbb\xbf" + _linear_table("c0,c1,y\n" if header else "").encode())
    data = {"target": "y", "features": ["c0"]} if header else {"header": False, "target": "2", "features": ["0"]}
    config = write_config(csv_yaml("t.csv", **data))
    result = cli("train", config, "--epochs", "2000", "--lr", "0.3", "--out", "run", "-q", "--no-plots")
    assert result.exit_code == 0, result.output
    summary = json.loads(Path("run/summary.json").read_text())
    assert summary["features"] == [data["features"][0]] and summary["samples"]["train"] == 30
    assert summary["optimum"]["w"] == pytest.approx([3.0], abs=1e-4)
    assert summary["optimum"]["b"] == pytest.approx([-2.0], abs=1e-4)


@pytest.mark.parametrize("target,features,w", [(2, [0], [3.0]), (2, None, [3.0, 0.0]), (0, [2], [1 / 3])])
def test_header_false_takes_columns_by_number(tmp_path, write_config, target, features, w):
    (tmp_path / "t.csv").write_text(_linear_table(None))
    data = {"header": False, "target": target} | ({"features": features} if features else {})
    result = cli("train", write_config(csv_yaml("t.csv", **data)), "--out", "run", "-q", "--no-plots")
    assert result.exit_code == 0, result.output
    summary = json.loads(Path("run/summary.json").read_text())
    assert summary["features"] == ([str(f) for f in features] if features else ["0", "1"])
    assert summary["target"] == str(target)
    assert summary["optimum"]["w"] == pytest.approx(w, abs=1e-4)


def test_text_in_an_unused_column_is_left_alone(tmp_path, write_config):
    rows = "".join(f"row {i},\"a, b\",{i},{2 * i + 1}\n" for i in range(10))
    (tmp_path / "t.csv").write_text("id,note,x,y\n" + rows)
    config = write_config(csv_yaml("t.csv", target="y", features=["x"]))
    assert cli("train", config, "--out", "run", "-q", "--no-plots").exit_code == 0
    summary = json.loads(Path("run/summary.json").read_text())
    assert summary["optimum"]["w"] == pytest.approx([2.0]) and summary["samples"]["train"] == 10


def test_a_duplicated_name_that_is_not_used_is_harmless(tmp_path, write_config):
    (tmp_path / "t.csv").write_text("n,n,x,y\n" + "".join(f"a,b,{i},{i + 1}\n" for i in range(5)))
    config = write_config(csv_yaml("t.csv", target="y", features=["x"]))
    assert cli("train", config, "--out", "run", "-q", "--no-plots").exit_code == 0


def test_the_shipped_csv_config_still_loads(tmp_path):
    result = cli("train", CONFIGS / "diabetes.yaml", "--set", "device=cpu", "--epochs", "5",
                 "--out", "run", "-q", "--no-plots")
    assert result.exit_code == 0, result.output


# --------------------------------------------------------------------------- inline and generated data


@pytest.mark.parametrize(
    "text,expected",
    [
        ("kind: scalar-sgd\ndata:\n  x: [1, 2, 1e39]\n  y: [1, 2, 3]\n", ["data.x[2]: 1e+39", "float32"]),
        ("kind: linear-gd\ndata:\n  x: [1, 2, 3]\n  y: [1, -4e38, 1e300]\n",
         ["data.y[1]: -4e+38", "(and 1 more value like it)"]),
        ("kind: linear-gd\ndata:\n  x: [1, 2, 3]\n  y: [1, 2, 3]\n  true_b: 3.5e38\n", ["data.true_b: 3.5e+38"]),
        ("kind: linear-gd\ndata:\n  source: synthetic\n  x_high: 1e39\n", ["data.x_high: 1e+39"]),
        ("kind: linear-gd\ndata:\n  source: synthetic\n  x_low: -1e39\n", ["data.x_low: -1e+39"]),
        ("kind: linear-gd\ndata:\n  source: synthetic\n  true_w: 5e38\n", ["data.true_w: 5e+38"]),
        ("kind: linear-gd\ndata:\n  source: synthetic\n  noise: 1e39\n", ["data.noise: 1e+39"]),
        ("kind: linear-gd\ndata:\n  source: synthetic\n  x_low: -3e38\n  x_high: 3e38\n",
         ["data.x_high − data.x_low = 6e+38", "narrow the range"]),
        ("kind: linear-gd\ndata:\n  source: synthetic\n  true_w: 1e38\n  x_high: 10\n",
         ["true_w·x reaches 1e+39 at x = 10"]),
        ("kind: linear-gd\ndata:\n  source: synthetic\n  true_w: -2e38\n  true_b: -2e38\n",
         ["true_w·x + true_b reaches -4e+38 at x = 1"]),
        ("kind: linear-gd\ndata:\n  source: synthetic\n  noise: 2e38\n",
         ["y = true_w·x + true_b + noise·N(0, 1) overflows", "lower data.noise"]),
        ("kind: mlp\ndata:\n  source: function\n  fn: square\n  x_high: 2e19\n  noise: 0\n",
         ["y = square(x) overflows", "narrow data.x_low/x_high"]),
        ("kind: mlp\ndata:\n  source: function\n  fn: sin\n  x_low: -1e39\n", ["data.x_low: -1e+39"]),
        ("kind: mlp\ndata:\n  source: function\n  noise: 5e38\n", ["data.noise: 5e+38"]),
    ],
)
def test_values_float32_cannot_hold_are_refused(write_config, text, expected):
    config = write_config("device: cpu\n" + text)
    limit = "float32" if "overflows" in expected[0] else "beyond float32's range"
    refused(cli("train", config, "--no-plots"), limit, "use dtype: float64 or rescale", *expected)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("data:\n  source: synthetic\n  true_w: 1e300\n  x_high: 1e10\n", ["true_w·x overflows at x = 1e+10"]),
        ("data:\n  source: synthetic\n  true_b: 1.7e308\n  true_w: 1e308\n", ["true_w·x + true_b overflows"]),
        ("data:\n  source: synthetic\n  noise: 1e308\n", ["noise·N(0, 1) overflows"]),
    ],
)
def test_values_float64_cannot_hold_are_refused(write_config, text, expected):
    config = write_config("kind: linear-gd\ndevice: cpu\ndtype: float64\n" + text)
    line = refused(cli("train", config, "--no-plots"), "float64's range", "rescale the data", *expected)
    assert "use dtype: float64" not in line


def test_a_range_wider_than_any_float_is_a_config_error(write_config):
    config = write_config("kind: linear-gd\ndata:\n  source: synthetic\n  x_low: -1e308\n  x_high: 1e308\n")
    refused(cli("train", config), "config.yaml: data", "wider than any float can hold")


@pytest.mark.parametrize("override", ["data.x_high=1e39", "data.true_b=-1e39", "data.noise=1e39"])
def test_an_override_beyond_float32_is_refused_and_float64_holds_it(write_config, override):
    config = write_config("kind: linear-gd\ndevice: cpu\ndata:\n  source: synthetic\n  n: 20\n")
    refused(cli("train", config, "--set", override, "--no-plots"), override.split("=")[0], "float32")
    # float64 holds the value: the data are built; whatever training does with them, it is not exit 2.
    result = cli("train", config, "--set", override, "--set", "dtype=float64", "--epochs", "1", "-q",
                 "--no-plots", "--out", "run")
    assert result.exit_code != 2, result.output
