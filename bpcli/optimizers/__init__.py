"""The update rules, one file each, and the batched driver that steps them.

OPTIMIZERS maps `train.optimizer` to its rule (see bpcli.optimizers.base.Rule): its
settings with torch.optim's names and defaults, its hand-written step with the formula
beside it, its name in words, what theory says of its stability and its update as script
text. A new rule is one file and one line here; everything else (the train section's
fields, sweeps, the update check, explain, the stable-lr bound, the words on the console
and in figures, nn-linear's torch.optim class, export's run.py, whether softmax keeps
Σ_c W_c) asks this registry.

`Optimizer` steps the rules in place on tensors with a leading member dimension K. Each
member has its own rule and settings: members are grouped by rule, a setting shared by a
group is a Python number and one that differs is a (K,) tensor, so a sweep over
optimizer=sgd,adam,rmsprop is one step call. The state (velocities, moments, the step
count) is allocated up front and updated in place, and the learning rate of a schedule is
computed on the device from the step count, so a CUDA graph can capture a step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from bpcli.optimizers import adagrad, adam, adamw, rmsprop, sgd
from bpcli.optimizers.base import Rule, Stability

if TYPE_CHECKING:
    import torch

    Tensors = dict[str, torch.Tensor]

OPTIMIZERS: dict[str, Rule] = {
    "sgd": sgd.RULE,
    "adam": adam.RULE,
    "adamw": adamw.RULE,
    "rmsprop": rmsprop.RULE,
    "adagrad": adagrad.RULE,
}
"""train.optimizer → its update rule."""

DEFAULT = "sgd"
"""The rule of a config that names none (the article's)."""

__all__ = ["DEFAULT", "OPTIMIZERS", "Optimizer", "Rule", "Stability", "describe", "misplaced", "settings_of"]


def setting_names() -> dict[str, list[str]]:
    """Every rule setting's name → the rules that have it, in registry order."""
    owners: dict[str, list[str]] = {}
    for name, rule in OPTIMIZERS.items():
        for key in rule.Settings.model_fields:
            owners.setdefault(key, []).append(name)
    return owners


def _defaults(key: str) -> list[Any]:
    """The default values of setting `key` in the rules that have it."""
    return [rule.Settings.model_fields[key].get_default(call_default_factory=True)
            for rule in OPTIMIZERS.values() if key in rule.Settings.model_fields]


def given(key: str, value: Any) -> bool:
    """Whether a value of setting `key` asks for something: not null, and not the default of
    a rule that has it (a resolved config lists its rule's defaults)."""
    return value is not None and value not in _defaults(key)


def misplaced(rules: Sequence[str], values: dict[str, Any], where: str = "this run uses") -> str | None:
    """The one-line refusal of a setting that none of `rules` has, or None when every setting
    given has a rule to go to. Shared by the train section and by sweeps over the optimizer,
    so both refuse the same settings the same way."""
    owners = setting_names()
    for key, value in values.items():
        if key in owners and given(key, value) and not any(key in OPTIMIZERS[r].Settings.model_fields for r in rules):
            rule = owners[key][0]
            have = " and ".join(owners[key])
            return (f"train.{key} is a setting of optimizer {have}, and {where} {', '.join(rules)}: remove it, "
                    f"or set train.optimizer: {rule}")
    return None


def settings_of(train: Any) -> Any:
    """The rule's own settings (validated, its defaults filled in) of a `train` section."""
    rule = OPTIMIZERS[train.optimizer]
    return rule.Settings(**{key: getattr(train, key) for key in rule.Settings.model_fields
                            if getattr(train, key, None) is not None})


def describe(train: Any) -> str:
    """The optimizer of a `train` section (or of a run's config.yaml, a dict) in words: `sgd`,
    `sgd (momentum 0.9)`, `adam`."""
    get = train.get if isinstance(train, dict) else (lambda key, default=None: getattr(train, key, default))
    name = get("optimizer") or DEFAULT
    rule = OPTIMIZERS.get(name)
    if rule is None:  # a run of a rule this bpcli does not know
        return str(name)
    try:
        own = rule.Settings(**{key: get(key) for key in rule.Settings.model_fields if get(key) is not None})
    except ValueError:
        return name
    extras = rule.describe(own)
    return name + (f" ({extras})" if extras else "")


class _Group:
    """The members that share one rule: their rows (None: all of them), and their settings
    and learning rate per parameter, shaped to broadcast against it."""

    def __init__(self, rule: Rule, rows: Any) -> None:
        self.rule, self.rows = rule, rows
        self.knobs: dict[str, Any] = {}
        self.lr: dict[str, Any] = {}
        self.state: dict[str, Tensors] = {}
        """Per parameter, its slots: the same tensors as the optimizer's `state`."""


class Optimizer:
    """Each member's update rule, applied in place to a dict of parameters.

    `settings` holds one `train` section per member (a single run has one); `updates` is
    the run's number of updates, which a learning-rate schedule spans. When every member
    is plain SGD with a constant lr, a step is exactly p ← p − lr·g, as before optimizers
    existed.
    """

    def __init__(self, params: Tensors, settings: Sequence[Any], updates: int | None = None) -> None:
        import torch

        from bpcli.schedules import Schedule

        first = next(iter(params.values()))
        device, dtype = first.device, first.dtype
        self._shapes = {name: (-1,) + (1,) * (p.dim() - 1) for name, p in params.items()}
        lrs = [s.lr for s in settings]
        self.settings: dict[str, Any] = {"lr": self._value(lrs, dtype, device)}
        """`lr`: the base learning rate, a number shared by every member or a (K,) tensor."""
        self.schedule = Schedule.of(settings, updates, device)
        """The learning-rate schedule, None when every member's lr is constant."""
        own = [settings_of(s) for s in settings]
        rules = [OPTIMIZERS[s.optimizer] for s in settings]
        self.plain = self.schedule is None and all(rule.plain(o) for rule, o in zip(rules, own))
        """Plain SGD for every member: p ← p − lr·g and nothing else."""
        self.state: Tensors = {}
        counts = self.schedule is not None or any(rule.counts_steps(o) for rule, o in zip(rules, own))
        if counts and not self.plain:  # the step count t, on the device so that a graph can advance it
            self.state["t"] = torch.zeros(len(settings), dtype=torch.float64, device=device)
        self.lr = self.schedule.lr if self.schedule is not None else None
        """The learning rate of the last step per member, (K,) in float64, when a schedule sets it."""
        self._groups: list[_Group] = []
        if self.plain:
            return
        names = list(dict.fromkeys(s.optimizer for s in settings))
        for name in names:
            members = [k for k, s in enumerate(settings) if s.optimizer == name]
            rule = OPTIMIZERS[name]
            rows = None if len(names) == 1 else torch.tensor(members, device=device)
            knobs = [rule.knobs(own[k]) for k in members]
            group = _Group(rule, rows)
            for pname, p in params.items():
                shape = self._shapes[pname]
                group.knobs[pname] = _Knobs({key: self._value([kn[key] for kn in knobs], dtype, device, shape)
                                             for key in knobs[0]})
                group.lr[pname] = self._value([lrs[k] for k in members], dtype, device, shape)
                rows_of_p = p.detach() if rows is None else p.detach().index_select(0, rows)
                group.state[pname] = rule.slots(rows_of_p, group.knobs[pname])
                for slot, tensor in group.state[pname].items():
                    # One rule (every single run): `w.velocity`, `w.m`, as checkpoints have always named them.
                    self.state[f"{pname}.{slot}" if len(names) == 1 else f"{name}.{pname}.{slot}"] = tensor
            self._groups.append(group)

    @staticmethod
    def _value(values: list[Any], dtype: Any, device: Any, shape: tuple[int, ...] = (-1,)) -> Any:
        """A setting shared by all members as a number; one that differs as a tensor of `shape`."""
        import torch

        if len(set(values)) == 1:
            return values[0]
        kind = torch.bool if isinstance(values[0], bool) else dtype
        return torch.tensor(values, dtype=kind, device=device).reshape(shape)

    def _setting(self, key: str, name: str) -> Any:
        """A setting shaped to broadcast against parameter `name`: a number or (K, 1, …)."""
        value = self.settings[key]
        return value.reshape(self._shapes[name]) if hasattr(value, "reshape") else value

    def step(self, params: Tensors, grads: Tensors) -> None:
        """Update every parameter in place from its gradient."""
        import torch

        with torch.no_grad():
            if self.plain:
                for name, p in params.items():
                    p.sub_(self._setting("lr", name) * grads[name])  # p ← p − lr·g
                return
            t = self.state.get("t")
            if t is not None:
                t.add_(1)  # t ← t + 1
            if self.schedule is not None:
                self.schedule.advance(t)  # the lr of update t, into self.lr, on the device
            for group in self._groups:
                for name, p in params.items():
                    self._step_group(group, name, p, grads[name], t)

    def _step_group(self, group: _Group, name: str, p: Any, g: Any, t: Any) -> None:
        rows = group.rows
        shape = self._shapes[name]
        if self.lr is not None:  # the schedule's lr of these members, in the parameters' dtype
            lr = (self.lr if rows is None else self.lr.index_select(0, rows)).reshape(shape).to(p.dtype)
        else:
            lr = group.lr[name]
        step = None if t is None else t[:1].reshape((1,) * p.dim())
        state = group.state[name]
        if rows is None:
            group.rule.step(p, g, state, lr, group.knobs[name], step)
            return
        own = p.index_select(0, rows)  # this rule's members, stepped apart and put back
        group.rule.step(own, g.index_select(0, rows), state, lr, group.knobs[name], step)
        p.index_copy_(0, rows, own)

    def _derived(self, missing: set[str], state: Tensors) -> Tensors:
        """Slots an older checkpoint lacks that its rule can derive from the step count `t` it
        kept (a rule's optional `derive(slot, t, s)`)."""
        if not missing or "t" not in state:
            return {}
        derived = {}
        for group in self._groups:
            derive = getattr(group.rule, "derive", None)
            for param, slots in group.state.items() if derive else ():
                for slot in slots:
                    key = next((k for k in missing if k.endswith(f"{param}.{slot}")), None)
                    if key is not None:
                        t = state["t"].to(slots[slot].device)[:1].reshape((1,) * slots[slot].dim())
                        derived[key] = derive(slot, t, group.knobs[param])
        return derived

    def state_dict(self) -> Tensors:
        """The optimizer's state (velocities, moments, step count, the lr of a schedule), copied."""
        state = {key: value.detach().clone() for key, value in self.state.items()}
        if self.lr is not None:
            state["lr"] = self.lr.clone()
        return state

    def load_state_dict(self, state: Tensors) -> None:
        """Restore what state_dict() returned (an empty dict for plain SGD)."""
        missing = set(self.state) - set(state)
        derived = self._derived(missing, state)
        missing -= set(derived)
        if missing:
            raise KeyError(f"the checkpoint has no optimizer state {sorted(missing)[0]!r}")
        for key, value in self.state.items():
            value.copy_(derived[key] if key in derived else state[key])
        if self.lr is not None and "lr" in state:
            self.lr.copy_(state["lr"])


class _Knobs:
    """A group's settings for one parameter, as attributes (s.momentum, s.beta1, …), and
    s.on(name): whether the setting is nonzero for any member, decided once here so that a
    step never reads the device to branch (a CUDA graph could not capture it)."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)
        self._on = {key: bool(v.any()) if hasattr(v, "any") else bool(v) for key, v in values.items()}

    def on(self, name: str) -> bool:
        return self._on[name]
