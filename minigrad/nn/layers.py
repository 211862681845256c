"""The layers of a CNN as Modules: each holds its parameters and settings and calls one function
from minigrad.functional, where the math (forward and backward) lives."""
import numpy as np

from .. import functional as F
from ..functional.conv import pair
from . import init
from .module import Module, Parameter


def _weight(*shape) -> Parameter:
    """A new weight, He-initialised (see init.kaiming_normal_)."""
    return init.kaiming_normal_(Parameter(np.empty(shape, dtype=np.float32)))


def _zeros(n: int) -> Parameter:
    return Parameter(np.zeros(n, dtype=np.float32))


class Conv2d(Module):
    """2-D convolution layer: weight (out, in/groups, kh, kw), bias (out,).

    Weights start He-normal and biases 0; models that follow a paper re-initialise them (models/alexnet.py).
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, groups=1, bias=True):
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"Conv2d: groups={groups} must divide in_channels={in_channels} and "
                             f"out_channels={out_channels}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size, self.stride = pair(kernel_size, "kernel_size"), pair(stride, "stride")
        self.padding = pair(padding, "padding")
        self.weight = _weight(out_channels, in_channels // groups, *self.kernel_size)
        self.bias = _zeros(out_channels) if bias else None

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.groups)

    def extra_repr(self):
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        text += f", padding={self.padding}" if any(self.padding) else ""
        text += f", groups={self.groups}" if self.groups != 1 else ""
        return text + (", bias=False" if self.bias is None else "")


class Linear(Module):
    """Fully connected layer: weight (out, in), bias (out,); y = x Wᵀ + b."""

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = _weight(out_features, in_features)
        self.bias = _zeros(out_features) if bias else None

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"{self.in_features}, {self.out_features}" + (", bias=False" if self.bias is None else "")


class LocalResponseNorm(Module):
    """The paper's LRN, α times the plain sum (PyTorch's equivalent has alpha=α·size); see F.local_response_norm."""

    def __init__(self, size=5, alpha=1e-4, beta=0.75, k=2.0):
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, x):
        return F.local_response_norm(x, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self):
        return f"size={self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"


class MaxPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else pair(stride, "stride")
        self.padding = pair(padding, "padding")

    def forward(self, x):
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}" + (f", padding={self.padding}" if any(self.padding) else "")


class Dropout(Module):
    """Dropout with probability p in training mode; see F.dropout for ``inverted`` (the paper's variant: False)."""

    def __init__(self, p=0.5, inverted=True):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p, self.inverted = p, inverted

    def forward(self, x):
        return F.dropout(x, self.p, self.training, self.inverted)

    def extra_repr(self):
        return f"p={self.p}" + ("" if self.inverted else ", inverted=False")


class ReLU(Module):
    def forward(self, x):
        return F.relu(x)


class Flatten(Module):
    """(N, C, H, W) -> (N, C·H·W): merges every axis from ``start_axis`` on."""

    def __init__(self, start_axis=1):
        super().__init__()
        self.start_axis = start_axis

    def forward(self, x):
        return F.flatten(x, self.start_axis)

    def extra_repr(self):
        return f"start_axis={self.start_axis}" if self.start_axis != 1 else ""
