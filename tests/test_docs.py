"""The README and docs/ as a reader meets them: short enough to read, links that lead
somewhere, and the numbers they state as the shipped configs produce them today."""

import csv
import json
import re
from pathlib import Path

import pytest

from bpcli.lifecycle import train
from conftest import ROOT, cli, config

README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]


def prose(path):
    """A page without its code blocks, where a link is only an example."""
    return re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)


def anchors(path):
    """The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces as -."""
    headings = re.findall(r"^#+\s+(.*)$", path.read_text(encoding="utf-8"), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_the_readme_is_one_short_page():
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 250


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_link_leads_to_a_file_and_heading_that_exist(page):
    for link in re.findall(r"\]\(([^)\s]+)\)", prose(page)):
        if re.match(r"[a-z]+:", link):
            continue
        target, _, anchor = link.partition("#")
        path = (page.parent / target) if target else page
        assert path.exists(), f"{page.name}: {link} leads nowhere"
        assert not anchor or anchor in anchors(path), f"{page.name}: {link} names no heading of {path.name}"


def gaps(run, l_star):
    with open(run / "metrics.csv", newline="") as fh:
        losses = {int(row["step"]): float(row["loss"]) for row in csv.DictReader(fh)}
    return [losses[step] - l_star for step in (100, 500, 1000, 2000)]


def test_the_longley_table_is_what_the_runs_give(tmp_path):
    # docs/conditioning.md: plain gradient descent, momentum 0.9 and Adam on configs/longley.yaml.
    text = (ROOT / "docs/conditioning.md").read_text(encoding="utf-8")
    runs = {"plain gradient descent": {}, "momentum 0.9": {"train__momentum": 0.9}, "Adam": {"train__optimizer": "adam"}}
    ended = {}
    for name, changes in runs.items():
        row = re.search(rf"^\| {name} \|(.*)\|$", text, flags=re.M).group(1).split("|")
        predicted, observed, *table_gaps, distance = (cell.strip() for cell in row)
        train(config("longley.yaml", **changes), tmp_path / name, plots=False)
        summary = json.loads((tmp_path / name / "summary.json").read_text())
        rates = summary["convergence"]
        assert predicted == ("none" if rates["rate_predicted"] is None else f"{rates['rate_predicted']:.6f}"), name
        assert observed == f"{rates['rate_observed']:.6f}", name
        written = [f"{g:.1e}".replace("e-0", "e-") for g in gaps(tmp_path / name, summary["optimum"]["loss"])]
        assert table_gaps == written, name
        assert float(distance) == pytest.approx(summary["distance_to_optimum"], abs=0.005), name
        ended[name] = summary
    # The README's account of the same runs: κ, plain descent's excess loss, momentum's advantage.
    readme = " ".join(README.read_text(encoding="utf-8").split())
    plain, momentum = ended["plain gradient descent"], ended["momentum 0.9"]
    best = plain["optimum"]["loss"]
    assert f"{plain['convergence']['condition_number']:,.0f} times its curvature along" in readme
    assert f"still ends {100 * (plain['final_loss'] - best) / best:.0f} % above the optimum's loss" in readme
    ratio = (plain["final_loss"] - best) / (momentum["final_loss"] - best)
    assert f"Momentum ends {round(ratio, -1):.0f} times closer" in readme, ratio


def test_the_readmes_numbers_beyond_the_article(tmp_path):
    text = " ".join(README.read_text(encoding="utf-8").split())
    mlp = train(config("mlp.yaml"), tmp_path / "mlp", plots=False)
    assert f"loss of about {mlp.losses[-1]:.4f}" in text

    train(config("diabetes.yaml"), tmp_path / "diabetes", plots=False)
    summary = json.loads((tmp_path / "diabetes/summary.json").read_text())
    r2, optimum = summary["r2"], summary["optimum_r2"]
    assert f"R² {r2['train']:.4f} on the training rows and {r2['val']:.4f}" in text
    assert f"the closed-form optimum reaches {optimum['train']:.4f} and {optimum['val']:.4f}" in text


def test_the_readmes_learning_rate_limit():
    # "Find the learning rate's limit": lr 0.7 reaches w = 4.0, b = 0.6; lr 0.9 diverges at step 22.
    text = " ".join(README.read_text(encoding="utf-8").split())
    assert "`--lr 0.9` diverges at step 22" in text and "lr < 2/λ_max = 0.796" in text
    fits = cli("train", ROOT / "configs/exp2.yaml", "--lr", "0.7", "--device", "cpu", "--no-plots", "--out", "fits")
    assert fits.exit_code == 0, fits.output
    params = json.loads(Path("fits/summary.json").read_text())["params"]
    assert params["w"][0] == pytest.approx(4.0, abs=5e-6) and params["b"][0] == pytest.approx(0.6, abs=5e-6)
    diverges = cli("train", ROOT / "configs/exp2.yaml", "--lr", "0.9", "--device", "cpu", "--no-plots", "--out", "d")
    assert diverges.exit_code == 1
    assert "diverged at step 22" in diverges.stderr and "2/λ_max = 0.79614" in diverges.stderr


def test_the_readmes_classification_numbers(tmp_path):
    # The README's classification section: what each shipped classifier reaches.
    text = README.read_text(encoding="utf-8")
    claims = {
        "moons.yaml": (r"moons\.yaml .*?(\d+) % in (\d+) steps", "train"),
        "logistic.yaml": (r"logistic\.yaml .*?a line gets (\d+) %", "train"),
        "softmax.yaml": (r"softmax\.yaml .*?: ([\d.]+) %, (\d+) % held out", "train"),
    }
    for name, (pattern, split) in claims.items():
        numbers = re.search(pattern, text).groups()
        train(config(name), tmp_path / name, plots=False)
        summary = json.loads((tmp_path / name / "summary.json").read_text())
        assert f"{100 * summary['accuracy'][split]:.{1 if '.' in numbers[0] else 0}f}" == numbers[0], name
        if name == "moons.yaml":
            assert summary["steps"] == int(numbers[1])
        if name == "softmax.yaml":
            assert f"{100 * summary['accuracy']['val']:.0f}" == numbers[1]
    for name in ("xor.yaml", "spiral.yaml"):  # Playground's data: the MLPs classify every point
        train(config(name), tmp_path / name, plots=False)
        assert json.loads((tmp_path / name / "summary.json").read_text())["accuracy"]["train"] == 1.0, name
