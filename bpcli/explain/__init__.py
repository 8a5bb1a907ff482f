"""`bpcli explain`: the computational graph of a loss, recorded from the real computation,
with its gradients, of a training step or of a formula.

    recorder      the graph of a loss: every torch operation noted, the gradient at every
                  node, the local derivative on every edge; MAX_OPERATIONS and SHOWN_VALUES
    step          a config's training step: its loss's graph, then the update
    parsing       the --expr language: a formula or a program of named steps, parsed and
                  checked before anything is computed
    expressions   a formula's graph, computed at the --at values, each operation checked

The result is plain numbers and strings, ready for the terminal or for
bpcli.plots.draw_graph. Importing this package is cheap; torch is imported where a graph is
computed, so a formula's mistakes are reported without waiting for it.
"""

from __future__ import annotations

from bpcli.explain.expressions import explain_expression
from bpcli.explain.parsing import MAX_FORMULA_LENGTH, parse_assignments
from bpcli.explain.recorder import MAX_OPERATIONS, SHOWN_VALUES, Edge, Graph, Node
from bpcli.explain.step import explain_config, explain_step

__all__ = [
    "MAX_FORMULA_LENGTH", "MAX_OPERATIONS", "SHOWN_VALUES", "Edge", "Graph", "Node", "explain_config",
    "explain_expression", "explain_step", "parse_assignments",
]
