"""Experiment 3: nn.Linear with nn.MSELoss and torch.optim (the configured rule's own class), and its batched
form for sweeps."""

from __future__ import annotations

import functools
import math
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn, optim

from bpcli.data.dataset import Dataset
from bpcli.errors import BpcliError
from bpcli.kinds.base import HandWrittenSGD, Kind, LeastSquares, LinearExperiment, LinearModel, Sampled, Tensors
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
    """Experiment 3: nn.Linear + nn.MSELoss + the configured torch.optim class, full batch, one member."""

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
        self._initial = {"w": weight, "b": bias} if cfg.model.bias else {"w": weight}  # on the CPU
        self.least_squares = LeastSquares(bias=cfg.model.bias, per_sample=False)
        self.x = data.x.to(device)  # (N, F)
        self.y = data.y.to(device)[:, None]  # (N, 1), the shape nn.Linear produces
        self._sample(cfg, self.x[None], self.y[None], len(self.x))  # full batch unless batch_size says otherwise
        self._manual_flag = cfg.train.grad == "manual"
        self._schedule: Schedule | None = None
        if scheduled(cfg.train):
            # torch.optim's SGD and Adagrad read a tensor lr on the host (.item()), which a CUDA
            # graph cannot capture; bpcli's own rules (nn-linear sweeps, the other kinds) can.
            self.not_graphable = ("cannot capture torch.optim's step with an lr schedule in a single nn-linear run "
                                  "(a sweep's members can)")
        self.step = self._manual_step if self._manual_flag else self._autograd_step
        self._group: Any = None

    # The module and its optimizer are made when first used: a sweep stacks its members'
    # initial values and never needs one module per member.
    @functools.cached_property
    def model(self) -> nn.Linear:
        weight, bias = self._initial["w"], self._initial.get("b")
        model = nn.utils.skip_init(nn.Linear, weight.shape[1], 1, bias=bias is not None, dtype=weight.dtype,
                                   device=self.x.device)
        with torch.no_grad():
            model.weight.copy_(weight)
            if bias is not None:
                model.bias.copy_(bias)
        return model

    @functools.cached_property
    def optimizer(self) -> optim.Optimizer:
        # torch.optim's own class for the configured rule. A schedule's lr is a tensor that
        # the schedule rewrites in place before each step (see _schedule_step), so a CUDA
        # graph that captured the step replays the schedule too; capturable keeps a rule's
        # step count on the GPU for the same reason, and eager CUDA runs use it too, so both
        # engines take the same steps.
        train = self.train
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
        if not self._manual_flag:
            self.step = self._ddp_step

    def _ddp_step(self, index: int, with_loss: bool = True) -> torch.Tensor:
        out = self._ddp(self.x)
        loss = self.criterion(self.y, out)
        self.optimizer.zero_grad()
        with self._collective():
            (loss * self._loss_scale).backward()  # DDP all-reduces the gradients here
        self._schedule_step()
        self.optimizer.step()
        return self._group.weighted_sum({"loss": loss})["loss"] if with_loss else loss

    @staticmethod
    def stack(members: list[NNLinear], device: torch.device) -> StackedNNLinear:
        """Several nn-linear runs as one batched trainer on `device` (see StackedNNLinear)."""
        return StackedNNLinear(members, device)

    def batch(self, index: int) -> Tensors:
        if self.batches.full and not self.batches.shuffle:
            return {"x": self.x, "y": self.y}
        return {name: values[0] for name, values in self.batches(index).items()}  # without the member dimension

    def params(self) -> Tensors:
        # weight is (1, F): its leading 1 doubles as the member dimension.
        return {"w": self.model.weight, **({"b": self.model.bias} if self.model.bias is not None else {})}

    def loss(self, params: Tensors, batch: Tensors) -> torch.Tensor:
        out = F.linear(batch["x"], params["w"], params.get("b"))
        return F.mse_loss(batch["y"], out)[None]  # the article's argument order; MSE is symmetric

    def manual_backward(self, params: Tensors, batch: Tensors) -> tuple[torch.Tensor, Tensors]:
        x, w, b = batch["x"], params["w"].detach(), params.get("b")
        residual = F.linear(x, w, None if b is None else b.detach()) - batch["y"]  # r = X·wᵀ + b − y, (N, 1)
        loss = residual.pow(2).mean()  # L = mean(r²)
        scaled = (2 / residual.shape[0]) * residual  # dL/dr = 2r/N
        # dL/dw = (dL/dr)ᵀ·X, shape (1, F);  dL/db = Σ dL/dr, shape (1,)
        grads = {"w": scaled.T @ x}
        if b is not None:
            grads["b"] = scaled.sum(0)
        return loss[None], grads

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
        loss, grads = self.manual_backward(self.params(), self.batch(index))
        if self._group is not None:  # Σ_r (n_r/N)·∇L_r, and the full batch's loss
            grads = self._group.weighted_sum(grads)
            loss = self._group.weighted_sum({"loss": loss})["loss"] if with_loss else loss
        for name, p in self.params().items():
            p.grad = grads[name]
        self._schedule_step()
        self.optimizer.step()  # torch.optim's update from these gradients
        return loss

    def gradients(self) -> Tensors:
        return {name: p.grad if p.grad is not None else torch.zeros_like(p) for name, p in self.params().items()}

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.model(x.to(self.x.device))[:, 0][None]

    def state_dict(self) -> dict[str, Any]:
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}
        if self._schedule is not None:
            state["schedule"] = {"updates": self._updates.clone(), "lr": self._schedule.lr.clone()}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self._schedule is not None:  # torch.optim loads a copy of the lr: the schedule's own again
            self._updates.copy_(state["schedule"]["updates"])
            self._schedule.lr.copy_(state["schedule"]["lr"])
            for group in self.optimizer.param_groups:
                group["lr"] = self._schedule.lr[0]


class StackedNNLinear(HandWrittenSGD):
    """Several nn-linear runs trained side by side: weights (K, 1, F), biases (K, 1), each
    member's loss nn.Linear's output under MSELoss, and each member's own rule
    (bpcli.optimizers, written by hand and equal to torch.optim's) with its own settings.

    The linear layer is written out as a multiply and a sum over features, not as K tiny
    matrix products: on a GPU a batched product of K (N×F)·(F×1) matrices costs far more
    than the elementwise kernels, which is what lets 65 536 members step in a few times
    one member's time. The results equal the single runs' to float rounding.
    """

    least_squares = LeastSquares(bias=True, per_sample=False)

    def __init__(self, members: list[NNLinear], device: torch.device) -> None:
        self._manual = members[0]._manual_flag
        self.least_squares = members[0].least_squares
        self._params = {name: torch.stack([m._initial[name] for m in members]).to(device)
                        .requires_grad_(not self._manual) for name in members[0]._initial}  # (K, 1, F), (K, 1)
        self._grads = {name: torch.zeros_like(p) for name, p in self._params.items()}
        self.x = torch.stack([m.x for m in members]).to(device)  # (K, N, F)
        self.y = torch.stack([m.y for m in members]).to(device)  # (K, N, 1)
        self.batches = members[0].batches.like(self.x, self.y, [m.seed for m in members])
        self.steps_per_epoch = self.batches.steps_per_epoch
        self.optimizer = Optimizer(self._params, [m.train for m in members], members[0].updates(members[0].train))

    @staticmethod
    def _forward(params: Tensors, x: torch.Tensor) -> torch.Tensor:
        # nn.Linear(F, 1) per member: ŷ = Σ_f x_f·w_f + b, shape (K, N, 1)
        w = params["w"]
        if "b" not in params:  # nn.Linear(F, 1, bias=False): ŷ = Σ_f x_f·w_f
            return (x * w).sum(-1, keepdim=True)
        b = params["b"][:, None, :]
        if x.shape[-1] == 1:
            return torch.addcmul(b, x, w)  # one feature: b + x·w in one kernel
        return (x * w).sum(-1, keepdim=True) + b

    def loss(self, params: Tensors, batch: Tensors) -> torch.Tensor:
        # MSELoss per member: (ŷ − y)² in one kernel, then the mean over each member's samples
        return F.mse_loss(self._forward(params, batch["x"]), batch["y"], reduction="none").mean((1, 2))

    def manual_backward(self, params: Tensors, batch: Tensors) -> tuple[torch.Tensor, Tensors]:
        x = batch["x"]
        params = {name: p.detach() for name, p in params.items()}
        residual = self._forward(params, x) - batch["y"]  # r = ŷ − y, (K, N, 1)
        loss = residual.pow(2).mean((1, 2))
        # dL/dr = 2r/N:  dL/dw = (2/N)·Σ_n r·x per member, (K, 1, F);  dL/db = (2/N)·Σ_n r, (K, 1)
        # (the constant is applied to the K sums, not to the K·N residuals)
        scale = 2 / residual.shape[1]
        grads = {"w": (residual * x).sum(1, keepdim=True).mul_(scale)}
        if "b" in params:
            grads["b"] = residual.sum(1).mul_(scale)
        return loss, grads

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        params = {name: p.detach() for name, p in self._params.items()}
        with torch.no_grad():
            return self._forward(params, x.to(self.x.device)[None])[..., 0]



KIND = Kind("nn-linear", NNLinearConfig, NNLinear)
