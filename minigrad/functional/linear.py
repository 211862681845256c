"""The fully connected layer."""
from .. import backend
from ..function import Function


class Linear(Function):
    """y = x Wᵀ + b.

    x: (N, in), W: (out, in) (PyTorch's layout), b: (out,)  ->  y: (N, out).
    ∂L/∂x = g W,   ∂L/∂W = gᵀ x,   ∂L/∂b = Σ_n g_n.
    """

    def forward(self, x, w, *bias):
        self.x = x if self.needs_input_grad[1] else None
        self.w = w if self.needs_input_grad[0] else None
        # (W xᵀ)ᵀ is x Wᵀ; OpenBLAS runs this form faster when the batch N is small next to the weight
        # (AlexNet's fc6 at N = 32: 11.7 → 9.1 ms); the copy to row order costs N·out elements, which
        # is also all it costs on a GPU, where the two forms run alike.
        y = backend.primitives(x).transposed_copy(w @ x.T, (1, 0))
        if bias:
            y += bias[0]
        return y

    def backward(self, gy):
        gx = gy @ self.w if self.needs_input_grad[0] else None
        gw = gy.T @ self.x if self.needs_input_grad[1] else None
        if len(self.needs_input_grad) == 2:
            return gx, gw
        return gx, gw, (gy.sum(axis=0) if self.needs_input_grad[2] else None)


def linear(x, w, b=None):
    """x (N, in) times w (out, in) transposed, plus b (out,).  See ``Linear``."""
    if w.ndim != 2 or x.ndim != 2 or x.shape[1] != w.shape[1]:
        raise ValueError(f"linear: expected input of shape (N, {w.shape[-1]}) for weight {w.shape}, got {x.shape}")
    if b is not None and b.shape != (w.shape[0],):
        raise ValueError(f"linear: bias must have shape ({w.shape[0]},), got {b.shape}")
    return Linear()(x, w) if b is None else Linear()(x, w, b)
