"""Reductions: sum, mean and max over some axes (or all).

The functions at the bottom shadow the builtins sum and max inside this module: do not use those here."""
from .. import backend
from ..function import Function
from .axes import normalize_axes


def _spread(gy, x_shape, axes, keepdims):
    """Broadcast the gradient of a reduction back over the reduced axes: (N, 1) or (N,) -> (N, C)."""
    xp = backend.xp(gy)
    if not keepdims:
        gy = xp.expand_dims(gy, axes) if axes else gy
    return xp.broadcast_to(gy, x_shape).copy()  # a real array: gradients may be updated in place later


class Sum(Function):
    """y = Σ_axes x.   ∂y/∂x = 1 for every summed element: the gradient is copied back along the axes."""

    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.x_shape, self.axes = x.shape, normalize_axes(self.axis, x.ndim, self.name.lower())
        return x.sum(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        return _spread(gy, self.x_shape, self.axes, self.keepdims)


class Mean(Function):
    """y = (1/n) Σ_axes x, n = number of elements reduced.   ∂y/∂x = 1/n."""

    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.x_shape, self.axes = x.shape, normalize_axes(self.axis, x.ndim, self.name.lower())
        y = x.mean(axis=self.axes, keepdims=self.keepdims)
        self.n = x.size // y.size if y.size else 1
        return y

    def backward(self, gy):
        return _spread(gy / self.n, self.x_shape, self.axes, self.keepdims)


class Max(Function):
    """y = max_axes x.   ∂y/∂x = 1 at the maximum, 0 elsewhere.

    Ties share the gradient equally (like ``torch.amax``): with two equal maxima each gets 1/2.
    """

    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.x_shape, self.axes = x.shape, normalize_axes(self.axis, x.ndim, self.name.lower())
        y = x.max(axis=self.axes, keepdims=True)
        is_max = (x == y).astype(x.dtype)
        self.share = is_max / is_max.sum(axis=self.axes, keepdims=True)  # 1/(number of ties) at a maximum, else 0
        return y if self.keepdims else y.squeeze(self.axes)

    def backward(self, gy):
        return _spread(gy, self.x_shape, self.axes, self.keepdims) * self.share


def sum(x, axis=None, keepdims=False): return Sum(axis, keepdims)(x)  # noqa: A001
def mean(x, axis=None, keepdims=False): return Mean(axis, keepdims)(x)
def max(x, axis=None, keepdims=False): return Max(axis, keepdims)(x)  # noqa: A001
