"""How the training step is executed: eagerly, or replayed from a captured CUDA graph.

A step of these small models is a handful of tiny kernels, so on a GPU its cost is the
CPU launching them. A CUDA graph records the kernels of one step once and replays them
with a single launch. The graph engine runs the first few steps eagerly on a side stream
(they are real training steps: the warm-up PyTorch asks for before capture), then captures
the step, once per batch index for per-sample kinds, and replays it from then on. The
replayed kernels are the eager ones, so the parameters are the same as eager training's.
"""

from __future__ import annotations

from typing import Any

import torch

from bpcli.errors import BpcliError

WARMUP_STEPS = 3
"""Eager steps per batch index before it is captured."""
MAX_GRAPHS = 64
"""Per-sample kinds need one graph per sample; beyond this many, graphs do not pay."""


def choose(engine: str, device: torch.device, steps_per_epoch: int, distributed: bool = False,
           not_graphable: str | None = None) -> str:
    """The engine a run uses: `auto` is graph on CUDA when it applies, eager elsewhere.

    Under torchrun each step all-reduces gradients between processes; those collectives
    are not captured, so a distributed run trains eagerly. A trainer whose step cannot be
    captured says why (`not_graphable`): `auto` then runs eagerly and `graph` is refused.
    """
    chosen = _choose(engine, device, steps_per_epoch, distributed)
    if not_graphable and chosen == "graph":
        if engine == "graph":
            raise BpcliError(f"train.engine: graph {not_graphable}; use engine: eager (or auto)")
        return "eager"
    return chosen


def _choose(engine: str, device: torch.device, steps_per_epoch: int, distributed: bool) -> str:
    if engine == "auto":
        applies = device.type == "cuda" and steps_per_epoch <= MAX_GRAPHS and not distributed
        return "graph" if applies else "eager"
    if engine == "graph":
        if device.type != "cuda":
            raise BpcliError(f"train.engine: graph needs a CUDA device, and this run is on {device}; "
                             "use engine: eager (or auto)")
        if steps_per_epoch > MAX_GRAPHS:
            raise BpcliError(f"train.engine: graph would need {steps_per_epoch} graphs (one per sample); "
                             f"use engine: eager for per-sample training on more than {MAX_GRAPHS} samples")
        if distributed:
            raise BpcliError("train.engine: graph does not capture the gradient all-reduce between torchrun "
                             "processes; use engine: eager (or auto) under torchrun")
    return engine


class GraphEngine:
    """A trainer whose step is replayed from CUDA graphs (see the module's docstring)."""

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer
        self.steps_per_epoch = trainer.steps_per_epoch
        self._graphs: dict[int, tuple[torch.cuda.CUDAGraph, torch.Tensor, dict[str, torch.Tensor]]] = {}
        self._eager: dict[int, int] = {}
        self._grads: dict[str, torch.Tensor] | None = None
        self._stream = torch.cuda.Stream()

    def step(self, index: int, with_loss: bool = True) -> torch.Tensor:
        # The graph always computes the loss: a replay cannot choose which kernels to run.
        captured = self._graphs.get(index)
        if captured is None:
            done = self._eager.get(index, 0)
            if done < WARMUP_STEPS:
                self._eager[index] = done + 1
                self._stream.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(self._stream):
                    loss = self.trainer.step(index, True)
                torch.cuda.current_stream().wait_stream(self._stream)
                self._grads = None
                return loss
            graph = torch.cuda.CUDAGraph()
            # Captured on the warm-up's stream, so that what warm-up left behind (autograd's
            # gradient accumulators) belongs to the stream the graph records on.
            with torch.cuda.graph(graph, stream=self._stream):  # records the kernels; nothing runs yet
                loss = self.trainer.step(index, True)
            # The tensors the graph writes on every replay: its loss and its gradients.
            captured = self._graphs[index] = (graph, loss, dict(self.trainer.gradients()))
        graph, loss, grads = captured
        graph.replay()
        self._grads = grads
        return loss

    def gradients(self) -> dict[str, torch.Tensor]:
        return self._grads if self._grads is not None else self.trainer.gradients()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # torch.optim's load_state_dict makes new state tensors, which captured graphs would
        # not see: after a restore the steps are warmed up and captured again.
        self.trainer.load_state_dict(state)
        self._graphs.clear()
        self._eager.clear()
        self._grads = None

    def __getattr__(self, name: str) -> Any:
        # Everything else (params, batch, loss, predict, state_dict, …) is the trainer's.
        return getattr(self.trainer, name)


def wrap(trainer: Any, engine: str, device: torch.device, distributed: bool = False) -> Any:
    """The trainer itself (eager) or the trainer behind a GraphEngine, as `engine` decides."""
    chosen = choose(engine, device, trainer.steps_per_epoch, distributed, getattr(trainer, "not_graphable", None))
    return GraphEngine(trainer) if chosen == "graph" else trainer
