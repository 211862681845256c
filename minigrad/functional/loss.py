"""log-softmax and the cross-entropy loss, written to be numerically stable."""
import numpy as np

from .. import backend
from ..function import Function
from .axes import normalize_axis


def _log_softmax(x, axis):
    # log softmax(x) = x − m − log Σ exp(x − m), with m = max x: the exponentials never overflow.
    xp = backend.xp(x)
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))


class LogSoftmax(Function):
    """yᵢ = xᵢ − log Σⱼ exp(xⱼ)  along ``axis``.

    ∂L/∂xᵢ = gᵢ − softmax(x)ᵢ · Σⱼ gⱼ,  with softmax(x) = exp(y)  (the output is saved, not the input).
    """

    def __init__(self, axis=-1):
        self.axis = axis

    def forward(self, x):
        self.y = _log_softmax(x, self.axis)
        return self.y

    def backward(self, gy):
        xp = backend.xp(gy)
        return gy - xp.exp(self.y) * gy.sum(axis=self.axis, keepdims=True)


class CrossEntropy(Function):
    """L = −(1/N) Σₙ log softmax(xₙ)[tₙ]   for logits x: (N, C) and integer targets t: (N,).

    ∂L/∂xₙ = (softmax(xₙ) − onehot(tₙ)) / N   — the famous "prediction minus truth".
    The targets are a constant of the op, not an input: they get no gradient.
    """

    def __init__(self, targets):
        self.targets = targets

    def forward(self, logits):
        xp = backend.xp(logits)
        self.rows = xp.arange(logits.shape[0])
        log_p = _log_softmax(logits, axis=1)
        self.p = xp.exp(log_p)
        return -log_p[self.rows, self.targets].mean()

    def backward(self, gy):
        gx = self.p.copy()
        gx[self.rows, self.targets] -= 1
        return gx * (gy / len(self.rows))


def log_softmax(x, axis=-1):
    return LogSoftmax(normalize_axis(axis, x.ndim, "log_softmax"))(x)


def cross_entropy(logits, targets):
    """Mean cross-entropy of ``logits`` (N, C) against class indices ``targets`` (N,), from raw logits."""
    from ..tensor import Tensor

    targets = targets.data if isinstance(targets, Tensor) else targets
    targets = backend.to_device(targets if hasattr(targets, "dtype") else np.asarray(targets), logits.device)
    if logits.ndim != 2:
        raise ValueError(f"cross_entropy: logits must be 2-D (batch, classes), got shape {logits.shape}")
    if targets.shape != (logits.shape[0],):
        raise ValueError(f"cross_entropy: targets must have shape ({logits.shape[0]},) to match logits "
                         f"{logits.shape}, got {tuple(targets.shape)}")
    if targets.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: targets must be integer class indices, got dtype {targets.dtype}")
    if targets.size and not (0 <= int(targets.min()) and int(targets.max()) < logits.shape[1]):
        raise ValueError(f"cross_entropy: targets must lie in [0, {logits.shape[1]}), got values from "
                         f"{int(targets.min())} to {int(targets.max())}")
    return CrossEntropy(targets)(logits)
