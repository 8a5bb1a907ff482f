"""`bpcli explain`'s picture reads well and lands in a new file: it fits a page at full text
size, no label sits on a box, shapes leave out bpcli's member dimension, and an earlier
graph is never replaced without --force."""

import struct
from pathlib import Path

import pytest

from bpcli.explain import explain_config, explain_expression
from bpcli.plots.graph import FONT, PAGE_WIDTH, graph_figure
from conftest import CONFIGS, cli, config

ARTICLE = "v = b*c; u = a + v; J = 3*u"
MICROGRAD = "z = 2*x + 2 + x; q = relu(z) + z*x; y = relu(z*z) + q + q*x"


def png_size(path):
    return struct.unpack(">II", Path(path).read_bytes()[16:24])


def graphs():
    yield "exp1", explain_config(config("exp1.yaml"))
    yield "exp2", explain_config(config("exp2.yaml"))
    yield "exp3", explain_config(config("exp3.yaml"))
    yield "mlp", explain_config(config("mlp.yaml"))
    yield "diabetes", explain_config(config("diabetes.yaml"))
    yield "article", explain_expression(ARTICLE, {"a": 1.0, "b": 2.0, "c": 3.0})
    yield "micrograd", explain_expression(MICROGRAD, {"x": -4.0})
    yield "wide mlp", explain_config(config("mlp.yaml", model__hidden=[64, 48, 32]))


def parts(fig):
    """The boxes and the edge labels of a drawn graph, with their extents in pixels."""
    fig.canvas.draw()
    texts = fig.axes[0].texts
    boxes = [(t.get_text(), t.get_bbox_patch().get_window_extent()) for t in texts if t.get_zorder() == 3]
    labels = [(t.get_text(), t.get_window_extent()) for t in texts if t.get_zorder() == 4]
    return boxes, labels


def overlap(a, b, slack=1.0):
    return a.x0 + slack < b.x1 and b.x0 + slack < a.x1 and a.y0 + slack < b.y1 and b.y0 + slack < a.y1


@pytest.mark.parametrize("name,graph", list(graphs()), ids=lambda v: v if isinstance(v, str) else "")
def test_no_label_sits_on_a_box_and_no_box_on_another(name, graph):
    fig = graph_figure(graph)
    boxes, labels = parts(fig)
    width, height = fig.get_size_inches() * fig.dpi
    assert len(boxes) == len(graph.nodes) and labels
    for i, (text, box) in enumerate(boxes):
        assert 0 <= box.x0 and box.x1 <= width and 0 <= box.y0 and box.y1 <= height, text
        for other, other_box in boxes[i + 1:]:
            assert not overlap(box, other_box), (text, other)
        for label, extent in labels:
            assert not overlap(box, extent), (text, label)


@pytest.mark.parametrize("name", ["mlp.yaml", "diabetes.yaml", "exp2.yaml"])
def test_a_layer_level_graph_fits_a_page_at_full_text_size(name):
    fig = graph_figure(explain_config(config(name)))
    width, height = fig.get_size_inches()
    assert width <= PAGE_WIDTH + 0.5 and height <= 8.5  # a landscape page, before any margin
    boxes = [t for t in fig.axes[0].texts if t.get_zorder() == 3]
    assert all(t.get_fontsize() == FONT for t in boxes)  # not shrunk to fit


def test_shapes_in_the_picture_and_the_table_leave_out_the_member_dimension():
    graph = explain_config(config("mlp.yaml", model__hidden=[12, 7]))
    nodes = {n.name: n for n in graph.nodes}
    assert nodes["W2"].shape == (7, 12) and nodes["v4"].shape == (200, 7) and nodes["x"].shape == (200, 1)
    boxes, _ = parts(graph_figure(graph))
    text = "\n".join(t for t, _ in boxes)
    assert "W2 (parameter)\n7×12, norm " in text and "v1 = x @ W1ᵀ\n200×12, norm " in text
    assert "(1, " not in text
    result = cli("explain", CONFIGS / "mlp.yaml", "--set", "model.hidden=[12,7]", "--out", "m.png")
    assert "200×12, norm" in result.stdout and "7×12, norm" in result.stdout and "(1, " not in result.stdout
    # A tensor's row of the chain rule reads like a number's, the local derivative named.
    assert "dL/dW2 ⟵ dL/dv4 · ∂v4/∂W2     ∂v4/∂W2 is a matrix" in result.stdout


def test_a_deep_mlp_folds_into_bands_that_each_fit_the_width():
    graph = explain_config(config("mlp.yaml", model__hidden=[32] * 6))
    fig = graph_figure(graph)
    width, height = fig.get_size_inches()
    assert width <= PAGE_WIDTH + 0.5 and height > width  # folded, not squeezed
    assert all(t.get_fontsize() == FONT for t in fig.axes[0].texts if t.get_zorder() == 3)


# ------------------------------------------------------------------ where the file lands


def test_without_out_each_graph_gets_a_new_file_in_outputs():
    first = cli("explain", CONFIGS / "exp1.yaml")
    assert first.exit_code == 0 and first.stdout.strip().endswith("graph drawn in outputs/graph1.png")
    before = Path("outputs/graph1.png").read_bytes()
    second = cli("explain", "--expr", ARTICLE, "--at", "a=1", "--at", "b=2", "--at", "c=3")
    assert second.exit_code == 0 and second.stdout.strip().endswith("outputs/graph2.png")
    assert Path("outputs/graph1.png").read_bytes() == before
    assert png_size("outputs/graph2.png") != png_size("outputs/graph1.png")
    assert not Path("graph.png").exists() and sorted(p.name for p in Path("outputs").iterdir()) == [
        "graph1.png", "graph2.png"]


def test_an_existing_file_is_replaced_only_with_force():
    Path("mine.png").write_bytes(b"a user's own picture")
    result = cli("explain", CONFIGS / "exp1.yaml", "--out", "mine.png")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.strip() == ("error: mine.png: already exists; write to --out NEW.png, "
                                     "or add --force to replace it")
    assert Path("mine.png").read_bytes() == b"a user's own picture"
    result = cli("explain", CONFIGS / "exp1.yaml", "--out", "mine.png", "--force")
    assert result.exit_code == 0 and Path("mine.png").read_bytes()[:4] == b"\x89PNG"


def test_out_may_name_a_new_folder_but_not_a_folder_itself():
    assert cli("explain", CONFIGS / "exp1.yaml", "--out", "figs/step1.svg").exit_code == 0
    assert Path("figs/step1.svg").read_text().lstrip().startswith("<?xml")
    Path("dir.png").mkdir()
    result = cli("explain", CONFIGS / "exp1.yaml", "--out", "dir.png", "--force")
    assert result.exit_code == 2 and "dir.png: is a directory; give a file in it" in result.stderr


def test_a_drawing_that_fails_leaves_no_file_behind(monkeypatch):
    from matplotlib.figure import Figure

    def refuse(self, path, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", refuse)
    result = cli("explain", CONFIGS / "exp1.yaml")
    assert result.exit_code == 2 and "outputs/graph1.png: cannot be written (No space left on device)" in result.stderr
    assert list(Path("outputs").iterdir()) == []
    Path("old.png").write_bytes(b"kept")
    result = cli("explain", CONFIGS / "exp1.yaml", "--out", "old.png", "--force")
    assert result.exit_code == 2 and Path("old.png").read_bytes() == b"kept"
    assert sorted(p.name for p in Path(".").iterdir() if p.suffix == ".png") == ["old.png"]


def test_outputs_that_is_a_file_is_one_line_before_anything_is_computed():
    Path("outputs").write_text("not a folder")
    result = cli("explain", CONFIGS / "exp1.yaml")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.strip() == ("error: outputs: is a file, not a folder, so graphs cannot go there; "
                                     "give a file with --out")


def test_the_suffix_may_be_upper_case():
    assert cli("explain", CONFIGS / "exp1.yaml", "--out", "G.PNG").exit_code == 0
    assert Path("G.PNG").read_bytes()[:4] == b"\x89PNG"
