"""`bpcli explain`: a training step's computational graph, with every number filled in."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from bpcli.cli.options import Device, Lr, OptionalConfigArg, Seed, Set
from bpcli.errors import BpcliError
from bpcli.graph import MAX_FORMULA_LENGTH, MAX_OPERATIONS  # no torch: it is imported when a graph is computed


def explain(
    config: OptionalConfigArg = None,
    step: Annotated[Optional[int], typer.Option("--step", min=1, help="Which training step (default 1).")] = None,
    sample: Annotated[
        Optional[int],
        typer.Option("--sample", min=0, help="Whose values to show: sample I of a full batch (from 0); "
                                             "for per-sample kinds, the step that trains on sample I."),
    ] = None,
    expr: Annotated[
        Optional[str],
        typer.Option("--expr", help=f"Explain a formula instead, e.g. '3*(a + b*c)': at most {MAX_OPERATIONS} "
                                    f"operations and {MAX_FORMULA_LENGTH:,} characters, computed in float64."),
    ] = None,
    at: Annotated[
        Optional[list[str]],
        typer.Option("--at", metavar="NAME=VALUE", help="A variable's value for --expr; repeatable."),
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Where to draw the graph (.png, .svg or .pdf).")] = Path(
        "graph.png"
    ),
    lr: Lr = None,
    seed: Seed = None,
    device: Device = None,
    set_: Set = None,
) -> None:
    """Show back-propagation at one step: every node's value, the chain rule with the numbers, the update.

    A training step's graph has a node per torch operation (a layer's matrix product is one
    node, shown by its shape and norm). A formula whose value or derivative is infinite or
    NaN (1/0, 10.0**400, sqrt(a) at a=0) is refused, naming the operation.

    Examples: bpcli explain configs/exp1.yaml;  bpcli explain --expr '3*(a + b*c)' --at a=1 --at b=2 --at c=3
    """
    from bpcli.console import make_console, print_graph
    from bpcli.graph import explain_config, explain_expression, parse_assignments
    from bpcli.plots import FORMATS, draw_graph

    if out.suffix.lstrip(".") not in FORMATS:
        raise BpcliError(f"--out {out}: give a file ending in .png, .svg or .pdf")
    if expr is not None:
        if config is not None:
            raise BpcliError("give either a config or --expr, not both")
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
    try:
        draw_graph(graph, out)
    except OSError as exc:
        raise BpcliError(f"{out}: cannot write it ({exc.strerror}); choose another --out") from None
    console.print(f"graph drawn in {out}")
