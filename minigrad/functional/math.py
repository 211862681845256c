"""Element-wise arithmetic, matmul and ReLU.

Binary ops broadcast like NumPy; their backward sums the gradient back to each
input's shape (``sum_to_shape``), which is the whole story of broadcasting in autograd.
"""
import numpy as np

from .. import backend
from ..function import Function, sum_to_shape


class Add(Function):
    """y = a + b.   ∂y/∂a = 1, ∂y/∂b = 1."""

    def forward(self, a, b):
        self.a_shape, self.b_shape = a.shape, b.shape
        return a + b

    def backward(self, gy):
        return sum_to_shape(gy, self.a_shape), sum_to_shape(gy, self.b_shape)


class Sub(Function):
    """y = a − b.   ∂y/∂a = 1, ∂y/∂b = −1."""

    def forward(self, a, b):
        self.a_shape, self.b_shape = a.shape, b.shape
        return a - b

    def backward(self, gy):
        return sum_to_shape(gy, self.a_shape), sum_to_shape(-gy, self.b_shape)


class Mul(Function):
    """y = a · b.   ∂y/∂a = b, ∂y/∂b = a."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, gy):
        ga = sum_to_shape(gy * self.b, self.a.shape) if self.needs_input_grad[0] else None
        gb = sum_to_shape(gy * self.a, self.b.shape) if self.needs_input_grad[1] else None
        return ga, gb


class Div(Function):
    """y = a / b.   ∂y/∂a = 1/b, ∂y/∂b = −a/b²."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, gy):
        ga = sum_to_shape(gy / self.b, self.a.shape) if self.needs_input_grad[0] else None
        gb = sum_to_shape(-gy * self.a / (self.b * self.b), self.b.shape) if self.needs_input_grad[1] else None
        return ga, gb


class Neg(Function):
    """y = −x.   ∂y/∂x = −1."""

    def forward(self, x):
        return -x

    def backward(self, gy):
        return -gy


class Pow(Function):
    """y = a ** b.   ∂y/∂a = b·a^(b−1),  ∂y/∂b = y·ln a  (taken as 0 at a = 0, like PyTorch)."""

    def forward(self, a, b):
        self.a, self.b = a, b
        self.y = a ** b
        return self.y

    def backward(self, gy):
        xp = backend.xp(gy)
        a, b = self.a, self.b
        ga = gb = None
        with np.errstate(divide="ignore", invalid="ignore"):   # 0^(b−1), log 0: masked out below (CuPy never warns)
            if self.needs_input_grad[0]:   # d(a^0)/da = 0, even at a = 0 where a^(−1) is infinite
                ga = sum_to_shape(xp.where(b == 0, 0, gy * b * a ** (b - 1)), a.shape)
            if self.needs_input_grad[1]:   # at a = 0, b ≥ 0: y is flat in b, so ∂y/∂b = 0, not 0·log 0
                gb = sum_to_shape(xp.where((a == 0) & (b >= 0), 0, gy * self.y * xp.log(a)), b.shape)
        return ga, gb


class Exp(Function):
    """y = eˣ.   ∂y/∂x = y  (so the output is saved, not the input)."""

    def forward(self, x):
        self.y = backend.xp(x).exp(x)
        return self.y

    def backward(self, gy):
        return gy * self.y


class Log(Function):
    """y = ln x.   ∂y/∂x = 1/x."""

    def forward(self, x):
        self.x = x
        return backend.xp(x).log(x)

    def backward(self, gy):
        return gy / self.x


class Sqrt(Function):
    """y = √x.   ∂y/∂x = 1/(2y)."""

    def forward(self, x):
        self.y = backend.xp(x).sqrt(x)
        return self.y

    def backward(self, gy):
        return gy / (2 * self.y)


class ReLU(Function):
    """y = max(x, 0).   ∂y/∂x = 1 where x > 0, else 0 (0 at x = 0, like PyTorch)."""

    def forward(self, x):
        self.y = backend.primitives(x).relu(x)
        return self.y

    def backward(self, gy):
        return backend.primitives(gy).relu_backward(gy, self.y)


class MatMul(Function):
    """Y = A @ B, batched and broadcasting like ``numpy.matmul``.

    A: (..., n, k), B: (..., k, m) -> Y: (..., n, m);  a 1-D A is a row (k,), a 1-D B a column (k,).
    ∂L/∂A = ∂L/∂Y · Bᵀ,  ∂L/∂B = Aᵀ · ∂L/∂Y,  each summed over the batch axes that were broadcast.
    """

    def forward(self, a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError(f"matmul: both operands need at least 1 dimension, got shapes {a.shape} and {b.shape}")
        k_a, k_b = a.shape[-1], b.shape[-2 if b.ndim > 1 else 0]
        if k_a != k_b:
            raise ValueError(f"matmul: shapes {tuple(a.shape)} and {tuple(b.shape)} do not line up: the last axis of "
                             f"the first ({k_a}) must equal the {'second-to-last' if b.ndim > 1 else 'only'} axis of "
                             f"the second ({k_b})")
        try:
            y = a @ b
        except ValueError:
            raise ValueError(f"matmul: the batch axes of shapes {tuple(a.shape)} and {tuple(b.shape)} do not "
                             "broadcast") from None
        self.a, self.b = a, b
        return y

    def backward(self, gy):
        xp = backend.xp(gy)
        # Treat 1-D operands as matrices so that one formula covers every case.
        a = self.a[None, :] if self.a.ndim == 1 else self.a
        b = self.b[:, None] if self.b.ndim == 1 else self.b
        if self.b.ndim == 1:   # first, so that a vector·vector's 0-d gradient becomes (1,), then (1, 1)
            gy = gy[..., None]
        if self.a.ndim == 1:
            gy = xp.expand_dims(gy, -2)
        ga = gb = None
        if self.needs_input_grad[0]:
            ga = sum_to_shape(gy @ xp.swapaxes(b, -1, -2), a.shape).reshape(self.a.shape)
        if self.needs_input_grad[1]:
            gb = sum_to_shape(xp.swapaxes(a, -1, -2) @ gy, b.shape).reshape(self.b.shape)
        return ga, gb


def add(a, b): return Add()(a, b)
def sub(a, b): return Sub()(a, b)
def mul(a, b): return Mul()(a, b)
def div(a, b): return Div()(a, b)
def neg(x): return Neg()(x)
def pow(a, b): return Pow()(a, b)  # noqa: A001  (shadows the builtin inside this module only)
def exp(x): return Exp()(x)
def log(x): return Log()(x)
def sqrt(x): return Sqrt()(x)
def relu(x): return ReLU()(x)
def matmul(a, b): return MatMul()(a, b)
