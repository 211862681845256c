"""Stochastic gradient descent as in the AlexNet paper (§5), and learning-rate schedules."""
from __future__ import annotations

from . import backend
from .function import no_grad
from .tensor import Tensor


class SGD:
    """The paper's update (Krizhevsky et al. 2012, §5), with ε the learning rate:

        v ← μ·v − λ·ε·w − ε·∂L/∂w
        w ← w + v                         (μ = momentum 0.9, λ = weight decay 0.0005)

    PyTorch's SGD keeps the velocity before the learning rate is applied:
        b ← μ·b + (∂L/∂w + λ·w);   w ← w − ε·b
    With a constant ε the two are the same trajectory (v = −ε·b).  They differ right after ε
    changes: here the velocity still carries steps taken at the old ε and fades out over a few
    steps; in PyTorch the whole accumulated velocity is rescaled by the new ε at once.
    tests/test_optim.py shows both facts.
    """

    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 5e-4):
        self.params = list({id(p): p for p in params}.values())   # a parameter given twice is updated once
        if not self.params:
            raise ValueError("SGD: got no parameters to optimise")
        if lr <= 0 or not 0 <= momentum < 1 or weight_decay < 0:
            raise ValueError(f"SGD: need lr > 0, 0 ≤ momentum < 1 and weight_decay ≥ 0, got lr={lr}, "
                             f"momentum={momentum}, weight_decay={weight_decay}")
        self.lr, self.momentum, self.weight_decay = lr, momentum, weight_decay
        self.velocity = [None] * len(self.params)

    def step(self) -> None:
        """Update every parameter that has a gradient (in place)."""
        with no_grad():
            by_backend = {}      # cpu or cuda -> the (w, ∂L/∂w, v) it updates
            for i, w in enumerate(self.params):
                if w.grad is None:
                    continue
                if self.velocity[i] is None:
                    self.velocity[i] = backend.xp(w.data).zeros_like(w.data)
                by_backend.setdefault(backend.primitives(w.data), []).append((w.data, w.grad.data, self.velocity[i]))
            for primitives, groups in by_backend.items():
                primitives.in_chunks(self._update, groups)

    def _update(self, w, grad, v) -> None:
        """The formula above, in place on arrays (or on blocks of their rows: ``in_chunks``)."""
        step = self.lr * grad
        step += (self.weight_decay * self.lr) * w
        v *= self.momentum
        v -= step
        w += v

    def zero_grad(self) -> None:
        for w in self.params:
            w.grad = None

    def state_dict(self) -> dict:
        """Hyper-parameters and the velocity of each parameter (by position), for checkpoints."""
        state = {"lr": self.lr, "momentum": self.momentum, "weight_decay": self.weight_decay}
        for i, v in enumerate(self.velocity):
            if v is not None:
                state[f"velocity.{i}"] = Tensor(v)
        return state

    def load_state_dict(self, state: dict) -> None:
        self.lr, self.momentum, self.weight_decay = float(state["lr"]), float(state["momentum"]), float(state["weight_decay"])
        self.velocity = [None] * len(self.params)
        for i, w in enumerate(self.params):
            v = state.get(f"velocity.{i}")
            if v is None:
                continue
            v = v.data if isinstance(v, Tensor) else v
            if tuple(v.shape) != w.shape:
                raise ValueError(f"SGD.load_state_dict: velocity.{i} has shape {tuple(v.shape)}, parameter {i} has {w.shape}")
            self.velocity[i] = backend.to_device(v, w.device).astype(w.dtype, copy=True)


class StepLR:
    """Multiply the learning rate by ``gamma`` every ``step_size`` epochs; call ``step()`` once per epoch."""

    def __init__(self, optimizer: SGD, step_size: int, gamma: float = 0.1):
        self.optimizer, self.step_size, self.gamma = optimizer, step_size, gamma
        self.epoch = 0

    def step(self) -> None:
        self.epoch += 1
        if self.epoch % self.step_size == 0:
            self.optimizer.lr *= self.gamma

    def state_dict(self) -> dict:
        return {"epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        self.epoch = int(state["epoch"])


class ReduceLROnPlateau:
    """The paper's schedule: divide the learning rate by 10 when the validation error stops improving.

    Call ``step(metric)`` after each evaluation (lower is better, e.g. top-1 error).  A value counts as
    an improvement when it is below best·(1 − threshold); after ``patience`` evaluations in a row without
    one, lr ← max(lr·factor, min_lr) and the count starts again.
    """

    def __init__(self, optimizer: SGD, factor: float = 0.1, patience: int = 2, threshold: float = 1e-4,
                 min_lr: float = 0.0):
        if not 0 < factor < 1:
            raise ValueError(f"ReduceLROnPlateau: factor must be in (0, 1), got {factor}")
        self.optimizer, self.factor, self.patience = optimizer, factor, patience
        self.threshold, self.min_lr = threshold, min_lr
        self.best, self.bad_epochs, self.reductions = float("inf"), 0, 0

    def step(self, metric: float) -> bool:
        """Record one evaluation; returns True when it lowered the learning rate."""
        if metric < self.best * (1 - self.threshold):
            self.best, self.bad_epochs = metric, 0
            return False
        self.bad_epochs += 1
        if self.bad_epochs <= self.patience or self.optimizer.lr <= self.min_lr:
            return False
        self.optimizer.lr = max(self.optimizer.lr * self.factor, self.min_lr)
        self.bad_epochs, self.reductions = 0, self.reductions + 1
        return True

    def state_dict(self) -> dict:
        return {"best": self.best, "bad_epochs": self.bad_epochs, "reductions": self.reductions}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.bad_epochs, self.reductions = float(state["best"]), int(state["bad_epochs"]), int(state["reductions"])
