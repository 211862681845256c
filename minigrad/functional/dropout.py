"""Dropout (Srivastava et al.; Krizhevsky et al. 2012, §4.2: p = 0.5 on fc6 and fc7)."""
from .. import backend
from ..function import Function


class Dropout(Function):
    """y = x · m · scale, with m a fixed 0/1 mask (1 = keep).   ∂L/∂x = ∂L/∂y · m · scale.

    ``dropout()`` draws m ~ Bernoulli(1 − p) and picks scale; building the op from a given mask
    makes it deterministic, which is what gradcheck needs.
    """

    def __init__(self, mask, scale=1.0):
        self.mask, self.scale = mask, scale

    def forward(self, x):
        return x * self.mask * x.dtype.type(self.scale)

    def backward(self, gy):
        return gy * self.mask * gy.dtype.type(self.scale)


def dropout(x, p=0.5, training=True, inverted=True):
    """Zero each element with probability p while training.

    inverted=True (the default, as in PyTorch): scale the kept elements by 1/(1 − p) while
    training and do nothing at evaluation.  inverted=False (the paper's convention): no scaling
    while training, multiply by (1 − p) at evaluation.  Both give every unit the same expected
    value in training as at evaluation, so the two are interchangeable in what a network learns;
    they differ only in where the factor is applied.  p = 0 is the identity either way.
    """
    if not 0 <= p < 1:
        raise ValueError(f"dropout: p must be in [0, 1), got {p}")
    if p == 0 or (not training and inverted):
        return x
    if not training:
        return x * (1 - p)
    with backend.device_context(x.data):
        keep = backend.rng(x.device).random(x.shape, dtype=x.dtype) >= p
    return Dropout(keep, 1 / (1 - p) if inverted else 1.0)(x)
