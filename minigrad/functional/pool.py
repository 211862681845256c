"""Max-pooling, overlapping as in AlexNet (Krizhevsky et al. 2012, §3.4: z = 3, s = 2)."""
from .. import backend
from ..function import Function
from .conv import check_kernel_fits, output_size, pair


class MaxPool2d(Function):
    """y[n, c, y, x] = max over the kh×kw window at (y·sh − ph, x·sw − pw) of x[n, c].

    x: (N, C, H, W) -> y: (N, C, oH, oW), oH = ⌊(H + 2·ph − kh)/sh⌋ + 1.  stride < kernel makes windows
    overlap (AlexNet's 3/2 pools 55 -> 27 -> 13 -> 6).  Padding counts as −∞, never as a maximum.
    ∂L/∂x: each ∂L/∂y goes to the pixel where its window's maximum was (saved as an arg-max in forward);
    a pixel that is the maximum of several overlapping windows gets the sum.  Ties go to the first
    pixel of the window in row-major order (tests draw distinct values, so ties never decide a check).
    """

    def __init__(self, kernel, stride, padding):
        self.kernel, self.stride, self.padding = kernel, stride, padding

    def forward(self, x):
        self.x_shape = x.shape
        out_hw = tuple(output_size(s, k, st, p) for s, k, st, p in zip(x.shape[2:], self.kernel, self.stride, self.padding))
        y, self.argmax = backend.primitives(x).max_pool_forward(x, self.kernel, self.stride, self.padding, out_hw,
                                                                need_argmax=self.needs_input_grad[0])
        return y

    def backward(self, gy):
        return backend.primitives(gy).max_pool_backward(gy, self.argmax, self.x_shape, self.kernel, self.stride,
                                                        self.padding)


def max_pool2d(x, kernel_size, stride=None, padding=0):
    """Max-pool x (N, C, H, W); stride defaults to kernel_size (non-overlapping).  See ``MaxPool2d``."""
    kernel = pair(kernel_size, "max_pool2d: kernel_size")
    stride = kernel if stride is None else pair(stride, "max_pool2d: stride")
    padding = pair(padding, "max_pool2d: padding")
    if x.ndim != 4:
        raise ValueError(f"max_pool2d: expected input of shape (N, C, H, W), got {x.shape}")
    if min(kernel) < 1 or min(stride) < 1:
        raise ValueError(f"max_pool2d: kernel_size and stride must be ≥ 1, got {kernel} and {stride}")
    if any(p < 0 or 2 * p > k for p, k in zip(padding, kernel)):
        raise ValueError(f"max_pool2d: padding {padding} must be between 0 and half the kernel {kernel}")
    check_kernel_fits("max_pool2d", x.shape, kernel, padding)
    return MaxPool2d(kernel, stride, padding)(x)
