"""A corpus of bad input: each gets one clear line on stderr, exit code 2, no traceback.

Plus a property-based test: random YAML documents and random overrides never make the
loader raise anything but bpcli's ConfigError.
"""

from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bpcli.config import ConfigError, load_config, parse_set, validate_config
from conftest import CONFIGS, cli

GOOD = "kind: linear-gd\n"

# (name, file contents, expected text in the message). Written to a .yaml file, then
# `bpcli train FILE` is run on it.
BAD_FILES = [
    ("unclosed-bracket", "kind: linear-gd\ntrain: [1,\n", "line"),
    ("tab-indent", "kind: linear-gd\ntrain:\n\tlr: 1\n", "line"),
    ("bad-mapping", "kind: linear-gd\n  seed: 1\n x: 2\n", "line"),
    ("a-list", "- kind\n- linear-gd\n", "not a list"),
    ("a-string", "linear-gd\n", "not a string"),
    ("a-number", "42\n", "not a number"),
    ("empty", "", "is empty"),
    ("only-comments", "# nothing here\n", "is empty"),
    ("unknown-top-key", GOOD + "epochz: 3\n", "epochz: unknown key"),
    ("unknown-synthetic-key", GOOD + "data:\n  size: 3\n", "data.size: unknown key"),
    ("unknown-inline-key", "kind: scalar-sgd\ndata:\n  x: [1]\n  y: [2]\n  z: [3]\n", "data.z: unknown key"),
    ("unknown-model-key", GOOD + "model:\n  init_c: 1\n", "model.init_c: unknown key"),
    ("unknown-train-key", GOOD + "train:\n  warmup_steps: 100\n", "train.warmup_steps: unknown key"),
    ("section-as-list", GOOD + "train: [1, 2]\n", "train: input should be a valid dictionary"),
    ("section-as-number", GOOD + "data: 7\n",
     "data.source: must be 'inline', 'synthetic', 'function', 'csv', 'moons', 'circles', 'xor', 'gauss' or 'spiral'"),
    ("lr-as-string", GOOD + "train:\n  lr: fast\n", "train.lr: input should be a valid number"),
    ("epochs-as-float", GOOD + "train:\n  epochs: 10.5\n", "train.epochs: input should be a valid integer"),
    ("seed-as-bool", GOOD + "seed: true\n", "seed: input should be a valid integer"),
    ("predict-as-string", GOOD + "predict: four\n", "predict: input should be a valid list"),
    ("x-with-a-word", "kind: scalar-sgd\ndata:\n  x: [1, two]\n  y: [1, 2]\n", "data.x[1]"),
    ("nan-lr", GOOD + "train:\n  lr: .nan\n", "finite number"),
    ("inf-lr", GOOD + "train:\n  lr: .inf\n", "finite number"),
    ("minus-inf-true-w", GOOD + "data:\n  true_w: -.inf\n", "data.true_w: input should be a finite number"),
    ("overflowing-lr", GOOD + "train:\n  lr: 1e999\n", "finite number"),
    ("negative-lr", GOOD + "train:\n  lr: -0.1\n", "train.lr: input should be greater than 0"),
    ("zero-lr", GOOD + "train:\n  lr: 0\n", "train.lr: input should be greater than 0"),
    ("negative-epochs", GOOD + "train:\n  epochs: -5\n", "train.epochs"),
    ("negative-noise", GOOD + "data:\n  noise: -1\n", "data.noise"),
    ("zero-samples", GOOD + "data:\n  n: 0\n", "data.n: input should be greater than or equal to 1"),
    ("huge-samples", GOOD + "data:\n  n: 1000000000000\n", "data.n: input should be less than or equal to"),
    ("huge-epochs", GOOD + "train:\n  epochs: 1000000000000\n", "train.epochs: input should be less than"),
    ("huge-seed", GOOD + "seed: 100000000000000000000000\n", "seed: input should be less than"),
    ("zero-log-every", GOOD + "train:\n  log_every: 0\n", "train.log_every"),
    ("negative-checkpoint-every", GOOD + "train:\n  checkpoint_every: -1\n", "train.checkpoint_every"),
    ("empty-inline-x", "kind: scalar-sgd\ndata:\n  x: []\n  y: []\n", "data.x: list should have at least 1 item"),
    ("x-y-lengths", "kind: scalar-sgd\ndata:\n  x: [1, 2, 3]\n  y: [1]\n", "x has 3 values but y has 1"),
    ("inverted-range", GOOD + "data:\n  x_low: 5\n  x_high: 1\n", "must be below x_high"),
    ("unknown-kind", "kind: transformer\n", "kind: unknown kind 'transformer'"),
    ("missing-kind", "seed: 3\n", "kind: missing"),
    ("kind-as-list", "kind: [linear-gd]\n", "kind: unknown kind"),
    ("duplicate-key", GOOD + "seed: 1\nseed: 2\n", "key 'seed' appears twice"),
    ("python-tag", "kind: !!python/object/apply:os.system ['echo pwned']\n", "line 1"),
    ("unhashable-key", GOOD + "? [a, b]\n: 1\n", "a key must be a plain word"),
    ("impossible-date", "kind: 2021-02-30\n", "a value cannot be read"),
    ("too-deep", "kind: " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
    ("alias-bomb", "a: &a [1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b]\n"
     "d: [*c,*c,*c,*c,*c,*c,*c,*c]\n" + GOOD, "unknown key"),
    ("device-typo", GOOD + "device: gpu\n", "device: 'gpu' is not a device bpcli knows"),
    ("device-index-word", GOOD + "device: cuda:x\n", "device: 'cuda:x' is not a device bpcli knows"),
    ("numeric-keys", GOOD + "1: 2\n", "keys should be strings"),
    ("scalar-with-bias", "kind: scalar-sgd\ndata:\n  source: synthetic\n  true_b: 1\n", "has no bias"),
]


@pytest.mark.parametrize("name,text,expected", BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_bad_config_file(tmp_path, name, text, expected):
    path = tmp_path / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    _one_line(cli("train", path), expected, path)


def _one_line(result, expected, mention=None):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert any(expected in line for line in lines), lines
    assert all(line.startswith("error: ") for line in lines)
    if mention is not None:
        assert str(mention) in lines[0]
    assert not Path("outputs").exists() or not any(Path("outputs").iterdir())


def _file_cases(tmp_path):
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(bytes(range(256)))
    folder = tmp_path / "folder.yaml"
    folder.mkdir()
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    return {
        "binary": (binary, "not a UTF-8 text file"),
        "directory": (folder, "is a directory"),
        "missing": (tmp_path / "absent.yaml", "no such file"),
        "under-a-file": (blocker / "c.yaml", "cannot be read"),
    }


@pytest.mark.parametrize("case", ["binary", "directory", "missing", "under-a-file"])
def test_bad_config_path(tmp_path, case):
    path, expected = _file_cases(tmp_path)[case]
    _one_line(cli("train", path), expected, path)


BAD_FLAGS = [
    (["--set", "train.lr"], "is not key=value"),
    (["--set", "=1"], "is not key=value"),
    (["--set", "train.lr=[0.1"], "the value is not valid YAML"),
    (["--set", "train.lr.x=1"], "train.lr is not a section"),
    (["--set", "train.scheduler=cosine"], "train.scheduler: unknown key"),
    (["--set", "kind=cnn"], "kind: unknown kind 'cnn'"),
    (["--lr", "-1"], "train.lr: input should be greater than 0"),
    (["--epochs", "0"], "train.epochs: input should be greater than or equal to 1"),
    (["--seed", "-3"], "seed: input should be greater than or equal to 0"),
    (["--log-every", "0"], "train.log_every"),
    (["--device", "quantum"], "device: 'quantum' is not a device bpcli knows"),
    (["--device", "mps"] if not torch.backends.mps.is_available() else ["--device", "cuda:99"], "is not available"),
]


@pytest.mark.parametrize("flags,expected", BAD_FLAGS, ids=[" ".join(f) for f, _ in BAD_FLAGS])
def test_bad_flag(flags, expected):
    _one_line(cli("train", CONFIGS / "exp2.yaml", *flags), expected)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_unavailable_cuda(device):
    _one_line(cli("train", CONFIGS / "exp2.yaml", "--device", device), "is not available")


def test_output_directory_cases(tmp_path):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    for out, expected in [(taken, "already holds files"), (a_file, "exists and is not a directory"),
                          (a_file / "run", "cannot write there")]:
        result = cli("train", CONFIGS / "exp2.yaml", "--epochs", "1", "--out", out)
        assert result.exit_code == 2 and expected in result.stderr and "Traceback" not in result.output
    assert (taken / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize("command", ["plot", "resume", "verify"])
@pytest.mark.parametrize("damage", ["missing-dir", "no-metrics", "corrupt-summary", "empty-metrics"])
def test_bad_run_directory(command, damage):
    run = Path("run")
    if damage != "missing-dir":
        assert cli("train", CONFIGS / "exp2.yaml", "--epochs", "3", "--out", run, "-q", "--no-plots").exit_code == 0
    if damage == "no-metrics":
        (run / "metrics.csv").unlink()
    elif damage == "corrupt-summary":
        (run / "summary.json").write_text('{"status": ')
    elif damage == "empty-metrics":
        (run / "metrics.csv").write_text("")
    args = {"plot": ["plot", run], "resume": ["train", "--resume", run, "--epochs", "9"],
            "verify": ["rerun", run, "--verify"]}[command]
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1
    assert str(run) in result.stderr


# --------------------------------------------------------------------------- fuzzing

FIELDS = ["kind", "seed", "device", "dtype", "predict", "data", "data.source", "data.n", "data.x", "data.y",
          "data.true_w", "data.noise", "data.x_low", "model", "model.init_w", "model.init_b", "train",
          "train.lr", "train.epochs", "train.log_every", "train.grad", "train.checkpoint_every", "junk.key"]
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.sampled_from(["scalar-sgd", "linear-gd", "nn-linear", "auto", "cpu", "manual"]),
)
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(FIELDS), st.text(max_size=8)), inner, max_size=5),
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=documents, overrides=st.lists(st.tuples(st.sampled_from(FIELDS), documents), max_size=3))
def test_random_documents_and_overrides_raise_only_config_errors(tmp_path, document, overrides):
    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    sets = [f"{key}={yaml.safe_dump(value, default_flow_style=True).strip()}" for key, value in overrides]
    try:
        load_config(path, [parse_set(s) for s in sets])
    except ConfigError as exc:
        assert exc.lines() and all(line.strip() for line in exc.lines())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=200))
def test_random_text_raises_only_config_errors(tmp_path, text):
    path = tmp_path / "fuzz.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_config(path)
    except ConfigError:
        pass


@settings(max_examples=200, deadline=None)
@given(document=documents)
def test_validation_of_any_mapping_raises_only_config_errors(document):
    raw = document if isinstance(document, dict) else {"kind": "linear-gd", "train": document}
    try:
        validate_config(raw)
    except ConfigError:
        pass
