"""`bpcli explain`: a training step's computational graph, with every number filled in."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from bpcli.cli.options import Device, Lr, OptionalConfigArg, OutPath, Seed, Set
from bpcli.errors import BpcliError
from bpcli.explain import MAX_FORMULA_LENGTH, MAX_OPERATIONS  # no torch: it is imported when a graph is computed


def explain(
    config: OptionalConfigArg = None,
    step: Annotated[Optional[int], typer.Option("--step", min=1, help="Which training step (default 1).")] = None,
    sample: Annotated[
        Optional[int],
        typer.Option("--sample", min=0, help="Whose values to show: sample I of the step's batch (from 0; "
                                             "an epoch's last batch may be shorter); for per-sample kinds, the "
                                             "step that trains on sample I."),
    ] = None,
    expr: Annotated[
        Optional[str],
        typer.Option("--expr", help="Explain a formula instead, e.g. 'J = 3*(a + b*c)', or named steps separated "
                                    "by ;, e.g. 'v = b*c; u = a + v; J = 3*u': at most "
                                    f"{MAX_OPERATIONS} operations and {MAX_FORMULA_LENGTH:,} characters, "
                                    "computed in float64."),
    ] = None,
    at: Annotated[
        Optional[list[str]],
        typer.Option("--at", metavar="NAME=VALUE", help="A variable's value for --expr; repeatable."),
    ] = None,
    out: Annotated[
        Optional[Path],
        typer.Option("--out", parser=OutPath, help="Where to draw the graph (.png, .svg or .pdf); default: outputs/graph<N>.png, "
                                   "the next free N.", show_default=False),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace the file already at --out.")] = False,
    lr: Lr = None,
    seed: Seed = None,
    device: Device = None,
    set_: Set = None,
) -> None:
    """Show back-propagation at one step: every node's value, the chain rule
    with the numbers, the update.

    A training step's graph has a node per torch operation (a layer's
    matrix product is one node, shown by its shape and norm). In a program
    of steps, each step names its result, and a result used by several
    steps is one node whose gradient adds up every use. A formula whose
    value or derivative is infinite or NaN (1/0, 10.0**400, sqrt(a) at a=0)
    is refused, naming the operation. The graph goes to a new file, never
    over an earlier one without --force.

    Examples: bpcli explain configs/exp1.yaml

    bpcli explain --expr 'v = b*c; u = a + v; J = 3*u' --at a=5 --at b=3 --at c=2
    """
    from bpcli.console import make_console, print_graph
    from bpcli.explain import explain_config, explain_expression, parse_assignments

    if out is not None:
        from bpcli.plots import FORMATS
        from bpcli.rundir.files import check_figure_out

        check_figure_out(out, force, FORMATS)  # before anything is computed
    elif GRAPHS.exists() and not GRAPHS.is_dir():
        raise BpcliError(f"{GRAPHS}: is a file, not a folder, so graphs cannot go there; give a file with --out")
    if expr is not None:
        if config is not None:
            raise BpcliError("give either a config or --expr, not both")
        given = [flag for flag, value in (("--step", step), ("--sample", sample), ("--lr", lr), ("--seed", seed),
                                          ("--device", device), ("--set", set_)) if value not in (None, [])]
        if given:
            raise BpcliError(f"{', '.join(given)}: for a config's training step; --expr takes its values from --at")
        graph = explain_expression(expr, parse_assignments(at or []))
    else:
        if config is None:
            raise BpcliError("give a config (bpcli explain configs/exp1.yaml) or --expr 'FORMULA' with --at values")
        if at:
            raise BpcliError("--at gives values to an --expr formula; with a config, use --step and --sample")
        from bpcli.config import from_flags, load_config

        graph = explain_config(load_config(config, from_flags(set_, lr=lr, seed=seed, device=device)), step, sample)
    console = make_console()
    print_graph(console, graph)
    console.print(f"graph drawn in {_draw(graph, out)}", soft_wrap=True)


GRAPHS = Path("outputs")
"""Where graphs go without --out: graph1.png, graph2.png, … in the first free name."""


def _draw(graph: object, out: Path | None) -> Path:
    """Draw the graph to `out`, or to the next free outputs/graph<N>.png, claimed first (see
    bpcli.rundir.files.next_free; a drawing that fails leaves no file behind, see write_file);
    an earlier file is replaced only when --out names it with --force (checked before)."""
    from bpcli.plots import draw_graph
    from bpcli.rundir.files import next_free, unwritable

    path = next_free(GRAPHS, "graph", ".png", elsewhere="give a file with --out") if out is None else out
    try:  # the folder exists: check_figure_out or next_free made it
        return draw_graph(graph, path)
    except BaseException as exc:
        if out is None:  # the empty placeholder next_free made
            path.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise unwritable(path, exc, "choose another --out") from None
        raise
