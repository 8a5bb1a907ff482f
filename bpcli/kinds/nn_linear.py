"""Experiment 3: nn.Linear with nn.MSELoss and torch.optim (the configured rule's own class), for a single
run or a sweep's K members."""

from __future__ import annotations

import functools
import math
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn, optim

from bpcli.data.dataset import Dataset
from bpcli.errors import BpcliError
from bpcli.kinds.base import (Kind, LeastSquares, LinearExperiment, LinearModel, Sampled, Tensors,
                              autograd_gradients)
from bpcli.optimizers import OPTIMIZERS, Optimizer, settings_of
from bpcli.schedules import Schedule, scheduled


class NNLinearConfig(LinearExperiment):
    """Experiment 3: nn.Linear(F, 1) with nn.MSELoss and torch.optim (optim.SGD in the article)."""

    kind: Literal["nn-linear"]
    """The experiment kind."""
    model: LinearModel
    """Initial parameters (null: nn.Linear's own initialisation)."""

    DEFAULTS: ClassVar[dict[str, Any]] = {
        "data": {"source": "synthetic", "n": 50, "true_w": 4.0, "true_b": 0.6},
        "model": {},
        "train": {"lr": 0.001, "epochs": 30000, "log_every": 20, "grad": "autograd"},
    }


class NNLinear(Sampled):
    """Experiment 3 for K ≥ 1 members: nn.Linear(F, 1), nn.MSELoss and the configured update rule.

    For one member the weight (1, F) and bias (1,) are nn.Linear(F, 1)'s own, whose leading 1
    doubles as the member dimension; K members keep weights (K, 1, F) and biases (K, 1).

    One member (a single run, or a sweep of one) trains as the article's loop does: the
    module's forward, nn.MSELoss, and torch.optim's own class for the rule, so that a run
    gives the article's numbers bit for bit. K members (a sweep) train side by side, each
    with its own rule and settings from bpcli.optimizers (written by hand, equal to
    torch.optim's), since one torch.optim step cannot give K members K learning rates or
    K rules. Their linear layer is written out as a multiply and a sum over features, not
    as K tiny matrix products: on a GPU a batched product of K (N×F)·(F×1) matrices costs
    far more than the elementwise kernels, which is what lets 65 536 members step in a few
    times one member's time. Each member ends where its single run does, to float rounding.
    """

    least_squares = LeastSquares(bias=True, per_sample=False)

    def __init__(self, cfg: NNLinearConfig, data: Dataset, device: torch.device,
                 generator: torch.Generator) -> None:
        features = data.x.shape[1]
        # nn.Linear(F, 1) initialised as its reset_parameters() does, but from our
        # generator: weight ~ kaiming_uniform(a=√5), bias ~ U(−1/√F, 1/√F), in that order.
        weight = torch.empty(1, features, dtype=data.x.dtype)
        nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)
        bound = 1 / math.sqrt(features)
        bias = nn.init.uniform_(torch.empty(1, dtype=data.x.dtype), -bound, bound, generator=generator)
        if cfg.model.init_w is not None:
            weight.fill_(cfg.model.init_w)
        if cfg.model.init_b is not None:
            bias.fill_(cfg.model.init_b)
        # nn.Linear(F, 1, bias=False) without an intercept (its bias is drawn all the same,
        # so the draws after it stay those of the article's order).
        self._initial = {"w": weight, "b": bias} if cfg.model.bias else {"w": weight}  # (1, F), (1,), on the CPU
        self.least_squares = LeastSquares(bias=cfg.model.bias, per_sample=False)
        self._manual = cfg.train.grad == "manual"
        self.x = data.x.to(device)[None]  # (K, N, F)
        self.y = data.y.to(device)[None, :, None]  # (K, N, 1): per member, the shape nn.Linear produces
        self._sample(cfg, self.x, self.y, self.x.shape[1])  # full batch unless batch_size says otherwise
        self._trains = [cfg.train]
        self._ready()

    @classmethod
    def stack(cls, members: list[NNLinear], device: torch.device) -> NNLinear:
        """Several nn-linear runs as one NNLinear of K members on `device`: their data and
        initial values side by side, each member with its own settings and batch order."""
        first, stacked = members[0], cls.__new__(cls)
        stacked._initial = {name: torch.cat([m._initial[name] for m in members]) for name in first._initial}
        stacked.least_squares, stacked._manual = first.least_squares, first._manual
        stacked.x = torch.cat([m.x for m in members]).to(device)  # one copy to the device, not one per member
        stacked.y = torch.cat([m.y for m in members]).to(device)
        stacked.train, stacked.seed = first.train, first.seed
        stacked.batches = first.batches.like(stacked.x, stacked.y, [m.seed for m in members])
        stacked.steps_per_epoch = stacked.batches.steps_per_epoch
        stacked._trains = [m.train for m in members]
        stacked._ready()
        return stacked

    def _ready(self) -> None:
        """The step for this many members, and the full batch in the shapes loss() takes."""
        self.members = len(self._trains)
        self._group: Any = None
        if self.members > 1:
            self._data = {"x": self.x, "y": self.y}
            self.step = self._batched_step
            return
        self._data = {"x": self.x[0], "y": self.y[0]}  # (N, F) and (N, 1), as nn.Linear takes and gives them
        self.step = self._manual_step if self._manual else self._autograd_step
        self._schedule: Schedule | None = None
        if scheduled(self.train):
            # torch.optim's SGD and Adagrad read a tensor lr on the host (.item()), which a CUDA
            # graph cannot capture; bpcli's own rules (K > 1 members, the other kinds) can.
            self.not_graphable = ("cannot capture torch.optim's step with an lr schedule in a single nn-linear run "
                                  "(a sweep of several members can)")

    # The parameters, module and optimizer are made when first used: members that a sweep
    # stacks give their initial values and never need a module each.
    @functools.cached_property
    def _params(self) -> Tensors:
        if self.members == 1:  # the module's own parameters, which torch.optim steps
            model = self.model
            return {"w": model.weight, **({"b": model.bias} if model.bias is not None else {})}
        # K members: weights (K, 1, F) and biases (K, 1), so the forward and the gradient need
        # no reshaping at each step (each view costs a few µs, a tenth of a small step)
        stacked = {name: p.to(self.x.device, copy=True)[:, None] for name, p in self._initial.items()}
        return {name: p.contiguous().requires_grad_(not self._manual) for name, p in stacked.items()}

    @functools.cached_property
    def model(self) -> nn.Linear:
        """The single run's nn.Linear(F, 1)."""
        weight, bias = self._initial["w"], self._initial.get("b")
        model = nn.utils.skip_init(nn.Linear, weight.shape[1], 1, bias=bias is not None, dtype=weight.dtype,
                                   device=self.x.device)
        with torch.no_grad():
            model.weight.copy_(weight)
            if bias is not None:
                model.bias.copy_(bias)
        return model

    @functools.cached_property
    def optimizer(self) -> optim.Optimizer | Optimizer:
        """torch.optim's own class for the single run's rule; each member's own rule for K members."""
        train = self.train
        if self.members > 1:
            return Optimizer(self._params, self._trains, self.updates(train))
        # A schedule's lr is a tensor that the schedule rewrites in place before each step
        # (see _schedule_step), so a CUDA graph that captured the step replays the schedule
        # too; capturable keeps a rule's step count on the GPU for the same reason, and eager
        # CUDA runs use it too, so both engines take the same steps.
        self._schedule = Schedule.of([train], self.updates(train), self.x.device)
        lr: Any = train.lr if self._schedule is None else self._schedule.lr[0]
        return OPTIMIZERS[train.optimizer].torch_optimizer(self.model.parameters(), lr, settings_of(train),
                                                           capturable=self.x.device.type == "cuda")

    def _schedule_step(self) -> None:
        """The lr of this update, computed on the device from the update count (when scheduled)."""
        self.optimizer  # made on first use, with the schedule
        if self._schedule is not None:
            self._updates.add_(1)
            self._schedule.advance(self._updates)

    @functools.cached_property
    def _updates(self) -> torch.Tensor:
        return torch.zeros(1, dtype=torch.float64, device=self.x.device)

    @functools.cached_property
    def criterion(self) -> nn.MSELoss:
        return nn.MSELoss()

    def distribute(self, group: Any) -> None:
        """Train this process's shard with DistributedDataParallel (see bpcli.distributed)."""
        if not self.batches.full:
            raise BpcliError("train.batch_size: mini-batches are drawn from the whole data, which no single "
                             "torchrun process holds; run mini-batch training without torchrun")
        from torch.nn.parallel import DistributedDataParallel

        from bpcli.distributed import collective

        self._collective = collective
        self._group = group
        self._ddp = DistributedDataParallel(self.model)
        # DDP averages the ranks' gradients; scaling each rank's loss by n_r·world/N turns
        # that average into the full batch's gradient Σ_r (n_r/N)·∇L_r, shards uneven or not.
        self._loss_scale = group.weight * group.world
        if not self._manual:
            self.step = self._ddp_step

    def _ddp_step(self, index: int, with_loss: bool = True) -> torch.Tensor:
        out = self._ddp(self._data["x"])
        loss = self.criterion(self._data["y"], out)
        self.optimizer.zero_grad()
        with self._collective():
            (loss * self._loss_scale).backward()  # DDP all-reduces the gradients here
        self._schedule_step()
        self.optimizer.step()
        return self._group.weighted_sum({"loss": loss})["loss"] if with_loss else loss

    def batch(self, index: int) -> Tensors:
        if self.batches.full and not self.batches.shuffle:
            return self._data
        batch = self.batches(index)
        return batch if self.members > 1 else {name: values[0] for name, values in batch.items()}

    def full_batch(self) -> Tensors:
        return self._data

    def params(self) -> Tensors:
        return self._params

    def _forward(self, params: Tensors, x: torch.Tensor) -> torch.Tensor:
        """ŷ: (N, 1) for one member, from x (N, F); (K, N, 1) for K members, from x (K or 1, N, F)."""
        w, b = params["w"], params.get("b")
        if self.members == 1:
            return F.linear(x, w, b)  # nn.Linear's forward: ŷ = x·wᵀ + b
        # nn.Linear(F, 1) per member, elementwise: ŷ = Σ_f x_f·w_f + b, with w (K, 1, F)
        if b is None:  # nn.Linear(F, 1, bias=False): ŷ = Σ_f x_f·w_f
            return (x * w).sum(-1, keepdim=True)
        b = b[:, None, :]  # (K, 1, 1)
        if x.shape[-1] == 1:
            return torch.addcmul(b, x, w)  # one feature: b + x·w in one kernel
        return (x * w).sum(-1, keepdim=True) + b

    def loss(self, params: Tensors, batch: Tensors) -> torch.Tensor:
        out = self._forward(params, batch["x"])
        if self.members == 1:
            return F.mse_loss(batch["y"], out)[None]  # nn.MSELoss, in the article's argument order; MSE is symmetric
        # MSELoss per member: (ŷ − y)² in one kernel, then the mean over each member's samples
        return F.mse_loss(out, batch["y"], reduction="none").mean((1, 2))

    def manual_backward(self, params: Tensors, batch: Tensors) -> tuple[torch.Tensor, Tensors]:
        x = batch["x"]
        params = {name: p.detach() for name, p in params.items()}
        residual = self._forward(params, x) - batch["y"]  # r = ŷ − y, (N, 1) or (K, N, 1)
        if self.members == 1:
            scaled = (2 / residual.shape[0]) * residual  # L = mean(r²), so dL/dr = 2r/N
            # dL/dw = (dL/dr)ᵀ·X, shape (1, F);  dL/db = Σ dL/dr, shape (1,)
            grads = {"w": scaled.T @ x}
            if "b" in params:
                grads["b"] = scaled.sum(0)
            return residual.pow(2).mean()[None], grads
        # Per member, dL/dw = (2/N)·Σ_n r·x, (K, 1, F);  dL/db = (2/N)·Σ_n r, (K, 1)
        # (the constant is applied to the K sums, not to the K·N residuals)
        scale = 2 / residual.shape[1]
        grads = {"w": (residual * x).sum(1, keepdim=True).mul_(scale)}
        if "b" in params:
            grads["b"] = residual.sum(1).mul_(scale)
        return residual.pow(2).mean((1, 2)), grads

    def _autograd_step(self, index: int, with_loss: bool = True) -> torch.Tensor:
        batch = self.batch(index)
        out = self.model(batch["x"])
        loss = self.criterion(batch["y"], out)  # exactly the article's loop
        self.optimizer.zero_grad()
        loss.backward()
        self._schedule_step()
        self.optimizer.step()
        # One member: a 0-dim loss (indexing it would cost a few µs a step), detached so
        # that this step's autograd graph is freed now rather than with the next loss.
        return loss.detach()

    def _manual_step(self, index: int, with_loss: bool = True) -> torch.Tensor:
        loss, grads = self.manual_backward(self._params, self.batch(index))
        if self._group is not None:  # Σ_r (n_r/N)·∇L_r, and the full batch's loss
            grads = self._group.weighted_sum(grads)
            loss = self._group.weighted_sum({"loss": loss})["loss"] if with_loss else loss
        for name, p in self._params.items():
            p.grad = grads[name]
        self._schedule_step()
        self.optimizer.step()  # torch.optim's update from these gradients
        return loss

    def _batched_step(self, index: int, with_loss: bool = True) -> torch.Tensor:
        batch = self.batches(index)  # each member's own batch
        if self._manual:
            loss, grads = self.manual_backward(self._params, batch)
        else:
            loss = self.loss(self._params, batch)
            grads = autograd_gradients(loss, self._params)  # each member's from its own loss
            loss = loss.detach()
        self._grads = grads  # kept for gradients() (not set as .grad: that costs a few µs a step)
        self.optimizer.step(self._params, grads)  # each member's own rule
        return loss

    def gradients(self) -> Tensors:
        grads = getattr(self, "_grads", None) if self.members > 1 else None
        if grads is not None:
            return grads
        return {name: p.grad if p.grad is not None else torch.zeros_like(p) for name, p in self._params.items()}

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        params = {name: p.detach() for name, p in self._params.items()}
        x = x.to(self.x.device)
        with torch.no_grad():
            out = self._forward(params, x if self.members == 1 else x[None])  # (M, 1) or (K, M, 1)
        return out.reshape(self.members, -1)  # (K, M)

    def state_dict(self) -> dict[str, Any]:
        if self.members > 1:
            return {**{name: p.detach().clone() for name, p in self._params.items()},
                    "optimizer": self.optimizer.state_dict()}
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}
        if self._schedule is not None:
            state["schedule"] = {"updates": self._updates.clone(), "lr": self._schedule.lr.clone()}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.members > 1:
            with torch.no_grad():
                for name, p in self._params.items():
                    p.copy_(state[name])
            self.optimizer.load_state_dict(state["optimizer"])
            return
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self._schedule is not None:  # torch.optim loads a copy of the lr: the schedule's own again
            self._updates.copy_(state["schedule"]["updates"])
            self._schedule.lr.copy_(state["schedule"]["lr"])
            for group in self.optimizer.param_groups:
                group["lr"] = self._schedule.lr[0]


KIND = Kind("nn-linear", NNLinearConfig, NNLinear)
