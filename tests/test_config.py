"""Config loading, defaults, overrides and the one-line errors for bad configs."""

import re

import pytest
import yaml

from bpcli.config import (
    dump_config,
    load_config,
    parse_set,
    reference_markdown,
    validate_config,
)
from bpcli.errors import ConfigError
from bpcli.kinds import KINDS
from conftest import CONFIGS, ROOT

SHIPPED = sorted(CONFIGS.glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_every_shipped_config_loads_and_round_trips(path):
    cfg = load_config(path)
    assert cfg.kind in KINDS
    assert cfg.seed == 0  # reproducible out of the box
    again = validate_config(yaml.safe_load(dump_config(cfg)))
    assert again == cfg


def test_a_bare_kind_gets_the_articles_settings():
    for name, kind in [("exp1.yaml", "scalar-sgd"), ("exp2.yaml", "linear-gd"), ("exp3.yaml", "nn-linear")]:
        assert validate_config({"kind": kind}) == load_config(CONFIGS / name)


def test_partial_sections_keep_the_kinds_other_defaults():
    cfg = validate_config({"kind": "nn-linear", "train": {"lr": 0.1}, "data": {"noise": 0.5}})
    assert (cfg.train.lr, cfg.train.epochs, cfg.train.log_every) == (0.1, 30000, 20)
    assert (cfg.data.n, cfg.data.noise) == (50, 0.5)


def test_synthetic_data_replaces_the_inline_default():
    cfg = validate_config({"kind": "scalar-sgd", "data": {"n": 10, "true_w": 3.0, "true_b": 0.0}})
    assert cfg.data.source == "synthetic" and cfg.data.n == 10


def test_set_values_are_parsed_as_yaml():
    assert parse_set("train.lr=1e-2").value == 0.01  # YAML 1.1 alone would say '1e-2'
    assert parse_set("train.lr=-2E+1").value == -20.0
    assert parse_set("seed=12").value == 12
    assert parse_set("predict=[1, 2.5]").value == [1, 2.5]
    assert parse_set("model.init_w=null").value is None
    assert parse_set("train.grad=manual").value == "manual"


def test_overrides_apply_and_are_validated():
    cfg = load_config(CONFIGS / "exp3.yaml", [parse_set("data.n=200"), parse_set("train.log_every=100")])
    assert (cfg.data.n, cfg.train.log_every) == (200, 100)
    with pytest.raises(ConfigError) as err:
        load_config(CONFIGS / "exp3.yaml", [parse_set("train.lr=-1")])
    assert err.value.lines() == [
        f"{CONFIGS / 'exp3.yaml'}: train.lr: input should be greater than 0 (got -1) (from --set train.lr=-1)"
    ]


@pytest.mark.parametrize("text", ["train.lr", "=3", "train..lr=1", "train.lr=[1,"])
def test_malformed_set_is_a_clear_error(text):
    with pytest.raises(ConfigError) as err:
        parse_set(text)
    assert "--set" in str(err.value)


def problems(write_config, text):
    with pytest.raises(ConfigError) as err:
        load_config(write_config(text))
    return err.value.lines()


def test_every_problem_is_reported_at_once(write_config):
    lines = problems(
        write_config,
        "kind: linear-gd\nsed: 3\ndata:\n  nn: 5\n  true_w: fast\ntrain:\n  lrr: 0.1\n  epochs: 0\n",
    )
    text = "\n".join(lines)
    assert len(lines) == 5
    assert "train.epochs: input should be greater than or equal to 1 (got 0)" in text
    assert "sed: unknown key (did you mean 'seed'?)" in text
    assert "data.nn: unknown key (did you mean 'n'?)" in text
    assert "data.true_w: input should be a valid number (got 'fast')" in text
    assert "train.lrr: unknown key (did you mean 'lr'?)" in text
    assert all(line.startswith(str(write_config("", "unused.yaml").parent)) for line in lines)


def test_a_key_in_the_wrong_section_points_to_the_right_one(write_config):
    assert problems(write_config, "kind: nn-linear\nlr: 0.1\n")[0].endswith(
        "lr: unknown key here (did you mean 'train.lr'?)"
    )


@pytest.mark.parametrize(
    "text,expected",
    [
        ("kind: linear-gd\ntrain:\n  lr: 0\n", "train.lr: input should be greater than 0 (got 0)"),
        ("kind: linear-gd\ntrain:\n  epochs: 0\n", "train.epochs: input should be greater than or equal to 1"),
        ("kind: linear-gd\ntrain:\n  epochs: 2.5\n", "train.epochs: input should be a valid integer (got 2.5)"),
        ("kind: linear-gd\ntrain:\n  lr: '0.1'\n", "train.lr: input should be a valid number (got '0.1')"),
        ("kind: linear-gd\ntrain:\n  lr: .nan\n", "train.lr: input should be a finite number"),
        ("kind: linear-gd\ntrain:\n  grad: magic\n", "train.grad: input should be 'manual' or 'autograd'"),
        ("kind: linear-gd\ndata:\n  n: 0\n", "data.n: input should be greater than or equal to 1"),
        ("kind: linear-gd\ndata:\n  noise: -1\n", "data.noise: input should be greater than or equal to 0"),
        ("kind: linear-gd\ndata:\n  x_low: 2\n", "data: x_low (2.0) must be below x_high (1.0); swap them"),
        ("kind: linear-gd\ndata:\n  source: excel\n", "data.source: must be 'inline', 'synthetic', 'function', "
         "'csv', 'moons', 'circles', 'xor', 'gauss' or 'spiral' (got 'excel')"),
        ("kind: linear-gd\ndevice: gpu\n", "device: 'gpu' is not a device bpcli knows"),
        ("kind: linear-gd\nseed: -1\n", "seed: input should be greater than or equal to 0"),
        ("kind: scalar-sgd\ndata:\n  x: [1, 2]\n  y: [1]\n", "data: x has 2 values but y has 1"),
        ("kind: scalar-sgd\nmodel:\n  init_b: 1\n", "model.init_b: unknown key (did you mean 'init_w'?)"),
        ("kind: scalar-sgd\ndata:\n  n: 5\n", "use kind linear-gd to fit y = w·x + b"),
        ("kind: linear-regression\n", "kind: unknown kind 'linear-regression' (did you mean 'linear-gd'?)"),
        ("seed: 1\n", "kind: missing; add `kind:` (one of scalar-sgd, linear-gd, nn-linear, mlp, logistic, softmax)"),
        ("kind: linear-gd\ntrain: 5\n", "train: input should be a valid dictionary"),
    ],
)
def test_bad_values_name_the_field_and_the_fix(write_config, text, expected):
    lines = problems(write_config, text)
    assert any(expected in line for line in lines), lines


@pytest.mark.parametrize(
    "text,expected",
    [
        ("kind: linear-gd\ntrain: [lr\n", r"line \d+, column \d+: "),
        ("kind: linear-gd\nkind: nn-linear\n", "line 2, column 1: key 'kind' appears twice"),
        ("", "is empty"),
        ("- kind: linear-gd\n", "must be a mapping of keys (kind, data, train, ...), not a list"),
        ("just words\n", "not a string"),
        ("kind: !!python/object/apply:os.system ['true']\n", "line 1"),
    ],
)
def test_unreadable_yaml_is_one_clear_line(write_config, text, expected):
    lines = problems(write_config, text)
    assert len(lines) == 1
    assert re.search(expected, lines[0]) or expected in lines[0], lines


def test_missing_directory_and_binary_files(tmp_path):
    for path, expected in [
        (tmp_path / "nope.yaml", "no such file"),
        (tmp_path, "is a directory"),
    ]:
        with pytest.raises(ConfigError, match=expected):
            load_config(path)
    binary = tmp_path / "b.yaml"
    binary.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(ConfigError, match="not a UTF-8 text file"):
        load_config(binary)


def test_the_config_reference_in_docs_is_generated_from_the_fields():
    page = (ROOT / "docs/config.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- config-reference:start -->\n(.*)<!-- config-reference:end -->", page, re.S)
    assert match, "docs/config.md lost its config reference markers"
    assert match.group(1).strip() == reference_markdown().strip(), (
        "docs/config.md's config reference is stale: paste the output of "
        "`python -c 'from bpcli.config import reference_markdown as r; print(r())'` between its markers"
    )


def test_every_field_is_documented():
    from bpcli.config import LogConfig, TrainConfig
    from bpcli.data import SOURCES

    kinds = [k.config for k in KINDS.values()]
    sections = [k.model_fields["model"].annotation for k in kinds]
    models = [*kinds, *sections, *(s.config for s in SOURCES.values()), TrainConfig, LogConfig]
    undocumented = [f"{m.__name__}.{n}" for m in models for n, f in m.model_fields.items() if not f.description]
    assert undocumented == []
