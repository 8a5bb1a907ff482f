"""Configs parse as their authors expect: YAML 1.2 numbers and booleans, keys that cannot
collide, the C loader with the same behaviour, values the dtype can hold, --at given once,
and `compare` that never overwrites a figure silently."""

from pathlib import Path

import pytest
import yaml

from bpcli.config import dump_config, load_config, load_yaml
from bpcli.config.loading import _Loader, dump_yaml, loader_on
from conftest import CONFIGS, cli


def _one_line(result, *expected):
    """Exit 2 with exactly one `error:` line on stderr, holding every expected piece."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "unexpected" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: "), lines
    for piece in expected:
        assert piece in lines[0], lines
    return lines[0]


def _printed(result):
    assert result.exit_code == 0, result.output
    return yaml.safe_load(result.stdout)


# ------------------------------------------------------------------ YAML 1.2 numbers

@pytest.mark.parametrize(
    "written,value",
    [("010", 10), ("0010", 10), ("-010", -10), ("0o10", 8), ("0o777", 511), ("0x1F", 31), ("1_000", 1000),
     ("+12", 12), ("0", 0)],
)
def test_integers_read_as_yaml_1_2_reads_them(write_config, written, value):
    seed = f"seed: {written}\n" if value >= 0 else ""
    printed = _printed(cli("config", write_config(f"kind: linear-gd\n{seed}data: {{true_w: {written}}}\n")))
    assert printed["data"]["true_w"] == value
    assert printed["seed"] == max(value, 0)


@pytest.mark.parametrize(
    "written,value",
    [("1e-3", 0.001), ("1E-3", 0.001), ("5e2", 500.0), ("+2.5e+1", 25.0), (".5", 0.5), ("3.", 3.0),
     ("0.000_1", 0.0001)],
)
def test_floats_read_as_yaml_1_2_reads_them(write_config, written, value):
    printed = _printed(cli("config", write_config(f"kind: linear-gd\ntrain: {{lr: {written}}}\n")))
    assert printed["train"]["lr"] == pytest.approx(value)


@pytest.mark.parametrize("written", ["1:30", "2:05:00", "1:00", "-0:30", "190:20:30.15"])
def test_base_60_numbers_are_words_and_refused_where_a_number_goes(write_config, written):
    # YAML 1.1 reads 1:30 as 90; YAML 1.2 as the text "1:30", which is not a learning rate.
    path = write_config(f"kind: linear-gd\ntrain:\n  lr: {written}\n")
    _one_line(cli("config", path), "train.lr", "valid number", repr(written))


@pytest.mark.parametrize("written", ["1:30", "10:00"])
def test_base_60_epochs_are_refused(write_config, written):
    _one_line(cli("config", write_config(f"kind: linear-gd\ntrain: {{epochs: {written}}}\n")), "train.epochs")


@pytest.mark.parametrize("written", ["yes", "no", "on", "off", "Yes", "OFF", "y", "n"])
def test_yes_no_on_off_are_words_not_booleans(write_config, written):
    path = write_config(f"kind: linear-gd\nlog:\n  tensorboard: {written}\n")
    _one_line(cli("config", path), "log.tensorboard", "valid boolean", repr(written))


@pytest.mark.parametrize("written,value", [("true", True), ("True", True), ("FALSE", False), ("false", False)])
def test_true_and_false_are_booleans(write_config, written, value):
    printed = _printed(cli("config", write_config(f"kind: linear-gd\nlog: {{tensorboard: {written}}}\n")))
    assert printed["log"]["tensorboard"] is value


def test_words_that_yaml_1_1_took_for_booleans_name_csv_columns(tmp_path, write_config):
    (tmp_path / "t.csv").write_text("on,yes,y\n1,2,3\n2,4,5\n3,6,7\n", encoding="utf-8")
    path = write_config("kind: linear-gd\ndata: {source: csv, path: t.csv, target: y, features: [on, yes]}\n")
    assert load_config(path).data.features == ["on", "yes"]


# ------------------------------------------------------------------ keys

@pytest.mark.parametrize(
    "keys,line",
    [
        (["1: a", "true: b"], 2),
        (["true: a", "1: b"], 2),
        (["0: a", "false: b"], 2),
        (["1.0: a", "1: b"], 2),
        (["seed: 1", "2: x"], 3),
        (["null: a"], 2),
        (["~: a"], 2),
        (["2024-01-01: a"], 2),
    ],
)
def test_keys_that_are_not_words_are_refused_before_they_collide(write_config, keys, line):
    path = write_config("kind: linear-gd\n" + "".join(k + "\n" for k in keys))
    _one_line(cli("config", path), f"line {line}, column 1", "keys should be strings")


def test_colliding_keys_inside_a_section_are_refused_with_their_place(write_config):
    path = write_config("kind: linear-gd\ntrain:\n  lr: 0.1\n  1: 5\n  true: 6\n")
    _one_line(cli("config", path), "line 4, column 3: key 1 is read as a number", "keys should be strings")


def test_quoted_keys_are_words(write_config):
    # "1" and "true" are strings, distinct keys; neither is a field.
    path = write_config('kind: linear-gd\ntrain:\n  "1": a\n')
    _one_line(cli("config", path), "train.1: unknown key")


@pytest.mark.parametrize("text", ["seed: 1\nseed: 2\n", "seed: 1\n'seed': 2\n", 'seed: 1\n"seed": 2\n'])
def test_duplicate_keys_are_refused_with_line_and_column(write_config, text):
    _one_line(cli("config", write_config("kind: linear-gd\n" + text)), "line 3, column 1", "'seed' appears twice")


def test_merge_keys_are_refused_clearly(write_config):
    path = write_config("kind: linear-gd\nbase: &b {lr: 0.1}\ntrain:\n  <<: *b\n")
    _one_line(cli("config", path), "line 4, column 3", "merge keys (<<) are not supported")


@pytest.mark.parametrize(
    "depth,expected", [(300, "train: input should be a valid dictionary"), (990, "nested too deeply"),
                       (5000, "nested too deeply")]
)
def test_deep_nesting_is_one_clear_line(write_config, depth, expected):
    # libyaml stops at 1000 levels; below that, Python's own recursion limit is reached first.
    path = write_config("kind: linear-gd\ntrain: " + "[" * depth + "]" * depth + "\n")
    _one_line(cli("config", path), expected)


# ------------------------------------------------------------------ --set reads values the same way

@pytest.mark.parametrize("value,expected", [("010", 10), ("0o17", 15), ("0x10", 16), ("2_000", 2000)])
def test_set_values_are_read_like_the_file(value, expected):
    printed = _printed(cli("config", CONFIGS / "exp2.yaml", "--set", f"data.n={value}"))
    assert printed["data"]["n"] == expected


@pytest.mark.parametrize("value", ["1:30", "0:01", "yes"])
def test_set_values_that_are_words_are_refused_naming_the_flag(value):
    line = _one_line(cli("config", CONFIGS / "exp2.yaml", "--set", f"train.lr={value}"), "train.lr")
    assert f"(from --set train.lr={value})" in line


@pytest.mark.parametrize("value", ["{1: 0.1, true: 0.2}", "{lr: 0.1, 2: 3}", "{lr: 0.1, lr: 0.2}"])
def test_set_mappings_with_bad_keys_are_refused_with_the_reason(value):
    _one_line(cli("config", CONFIGS / "exp2.yaml", "--set", f"train={value}"), "--set", "key")


# ------------------------------------------------------------------ the C loader behaves like the Python one

DOCUMENTS = [
    "kind: linear-gd\nseed: 010\ntrain: {lr: 1e-3, epochs: 0x10}\npredict: [1:30, .5, 0o7, yes, ~]\n",
    "a: [1_000, -0.5e+2, .inf, true, False, 2020-01-02, '010', \"1e3\"]\n",
    "kind: linear-gd\n1: a\ntrue: b\n",
    "kind: x\nkind: y\n",
    "x:\n  y: 1\n  2.5: 2\n",
    "? [a]\n: 1\n",
    "x: !!python/name:os.system\n",
]


def _outcome(loader, text):
    try:
        return ("value", yaml.load(text, Loader=loader))
    except yaml.MarkedYAMLError as exc:
        return ("error", exc.problem, exc.problem_mark.line, exc.problem_mark.column)


@pytest.mark.skipif(not getattr(yaml, "__with_libyaml__", False), reason="PyYAML built without libyaml")
def test_configs_are_parsed_by_libyaml_when_pyyaml_has_it():
    assert issubclass(_Loader, yaml.CSafeLoader)


@pytest.mark.parametrize("text", DOCUMENTS)
def test_the_pure_python_fallback_reads_and_refuses_the_same(text):
    assert _outcome(loader_on(yaml.SafeLoader), text) == _outcome(_Loader, text)


# ------------------------------------------------------------------ written configs read back the same

@pytest.mark.parametrize(
    "value", ["0o10", "1e5", "010", "1:30", "yes", "on", "true", "null", "1_0", ".5", "0x1f", "<<", "=", "2020-01-01"]
)
def test_written_strings_read_back_as_strings_by_both_yaml_readers(value):
    text = dump_yaml({"features": [value], "n": 10, "lr": 1e-5, "flag": True})
    assert yaml.safe_load(text) == load_yaml(text) == {"features": [value], "n": 10, "lr": 1e-5, "flag": True}


def test_a_written_config_reads_back_equal(tmp_path, write_config):
    (tmp_path / "t.csv").write_text("0o10,1e5,yes\n1,2,3\n2,4,5\n3,6,7\n", encoding="utf-8")
    config = load_config(write_config("kind: linear-gd\ndata: {source: csv, path: t.csv, target: 'yes'}\n"))
    text = dump_config(config)
    assert yaml.safe_load(text) == load_yaml(text) == config.model_dump(mode="json")


# ------------------------------------------------------------------ numbers the dtype cannot hold

@pytest.mark.parametrize(
    "text,where",
    [
        ("kind: scalar-sgd\npredict: [1e39]\n", "predict[0]: 1e+39"),
        ("kind: scalar-sgd\npredict: [1, -4e38]\n", "predict[1]: -4e+38"),
        ("kind: linear-gd\npredict: [[1, 2], [3, 1e100]]\n", "predict[1][1]: 1e+100"),
        ("kind: scalar-sgd\nmodel: {init_w: 1e39}\n", "model.init_w: 1e+39"),
        ("kind: linear-gd\nmodel: {init_b: -3.5e38}\n", "model.init_b: -3.5e+38"),
        ("kind: nn-linear\nmodel: {init_w: 1e300}\n", "model.init_w: 1e+300"),
        ("kind: linear-gd\nmodel: {init_w: 1000000000000000000000000000000000000000}\n", "model.init_w: 1e+39"),
    ],
)
def test_values_beyond_float32_are_refused_with_the_fix(write_config, text, where):
    _one_line(cli("config", write_config(text)), where, "float32", "dtype: float64")


def test_several_values_beyond_float32_in_one_section_are_one_line(write_config):
    line = _one_line(cli("config", write_config("kind: linear-gd\nmodel: {init_w: 1e39, init_b: 2e39}\n")))
    assert "model.init_w: 1e+39" in line and "so is model.init_b" in line


def test_predict_and_model_beyond_float32_are_one_line_each(write_config):
    result = cli("config", write_config("kind: linear-gd\nmodel: {init_w: 1e39}\npredict: [5e38]\n"))
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2 and "predict[0]" in lines[0] and "model.init_w" in lines[1], lines


def test_values_beyond_float32_from_set_name_the_flag():
    result = cli("config", CONFIGS / "exp2.yaml", "--set", "model.init_w=5e38")
    assert "(from --set model.init_w=5e38)" in _one_line(result, "model.init_w", "dtype: float64")


@pytest.mark.parametrize(
    "text",
    [
        "kind: scalar-sgd\ndtype: float64\npredict: [1e39]\nmodel: {init_w: -1e300}\n",
        "kind: linear-gd\npredict: [3.4028234663852886e38, -3.4028234663852886e38]\nmodel: {init_b: 3e38}\n",
    ],
)
def test_values_the_dtype_holds_are_accepted(write_config, text):
    assert cli("config", write_config(text)).exit_code == 0


# ------------------------------------------------------------------ explain --at

@pytest.mark.parametrize(
    "at,name",
    [(["a=1", "a=2"], "a"), (["a=1", "b=2", "a=1"], "a"), (["b=2", " b = 3", "a=1"], "b"),
     (["a=1", "c=0", "b=1", "c=1e3"], "c")],
)
def test_a_variable_given_twice_is_an_error_naming_it(at, name):
    args = [arg for item in at for arg in ("--at", item)]
    _one_line(cli("explain", "--expr", "J = a + b*c", *args, "--out", "g.png"), f"--at {name}", "twice")
    assert not Path("g.png").exists()


# ------------------------------------------------------------------ compare --out

@pytest.fixture
def two_runs():
    for out, lr in (("a", "0.1"), ("b", "0.3")):
        assert cli("train", CONFIGS / "exp2.yaml", "--lr", lr, "--epochs", "20", "--out", out, "-q",
                   "--no-plots").exit_code == 0
    return ["a", "b"]


@pytest.mark.parametrize("out", ["mine.png", "fig.svg", "sub/fig.pdf"])
def test_compare_does_not_overwrite_a_file_without_force(two_runs, out):
    target = Path(out)
    target.parent.mkdir(exist_ok=True)
    target.write_bytes(b"keep me")
    before = target.stat().st_mtime_ns
    _one_line(cli("compare", *two_runs, "--out", out), str(target), "already exists", "--force",
              f"--out NEW{target.suffix}")
    assert target.read_bytes() == b"keep me" and target.stat().st_mtime_ns == before

    assert cli("compare", *two_runs, "--out", out, "--force").exit_code == 0
    assert target.read_bytes() != b"keep me"


def test_compare_without_out_writes_the_next_free_name(two_runs):
    Path("outputs").mkdir()
    Path("outputs/compare2.png").write_bytes(b"keep me")  # an earlier figure, numbered by hand
    Path("compare.png").write_bytes(b"keep me too")
    written = []
    for _ in range(2):
        result = cli("compare", *two_runs)
        assert result.exit_code == 0, result.output
        written.append(result.stdout.strip())
    assert written == ["outputs/compare3.png", "outputs/compare4.png"]
    assert all(Path(p).read_bytes()[:4] == b"\x89PNG" for p in written)
    assert Path("outputs/compare2.png").read_bytes() == b"keep me"
    assert Path("compare.png").read_bytes() == b"keep me too"
