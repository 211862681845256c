"""Ops that move elements around without changing them: reshape, transpose, indexing,
concatenate/split (how AlexNet's two towers are joined and parted), and device moves.
Their backward puts each gradient element back where its element came from."""
import math

import numpy as np

from .. import backend
from ..function import Function
from .axes import normalize_axis


class Reshape(Function):
    """y = x viewed with a new shape (same elements, same order).   ∂L/∂x = ∂L/∂y reshaped back."""

    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        self.x_shape = x.shape
        try:
            return x.reshape(self.shape)
        except ValueError:
            raise ValueError(f"reshape: cannot reshape a tensor of shape {tuple(x.shape)} ({x.size} elements) "
                             f"into {tuple(self.shape)}") from None

    def backward(self, gy):
        return gy.reshape(self.x_shape)


class Transpose(Function):
    """y = x with its axes permuted: y.shape[i] = x.shape[axes[i]].   ∂L/∂x = ∂L/∂y under the inverse permutation."""

    def __init__(self, axes=None):
        self.axes = axes

    def forward(self, x):
        axes = tuple(range(x.ndim))[::-1] if self.axes is None else tuple(normalize_axis(a, x.ndim, "transpose")
                                                                          for a in self.axes)
        if sorted(axes) != list(range(x.ndim)):
            raise ValueError(f"transpose: axes {self.axes} are not a permutation of the {x.ndim} axes of shape {x.shape}")
        self.inverse = tuple(sorted(range(x.ndim), key=axes.__getitem__))
        return x.transpose(axes)

    def backward(self, gy):
        return gy.transpose(self.inverse)


class GetItem(Function):
    """y = x[index]: basic slicing (views) and integer/boolean-array indexing (copies).

    ∂L/∂x is zero except at the picked elements, which receive ∂L/∂y; an element picked
    twice (x[[0, 0]]) receives both gradients, so array indices use a scatter-add.
    """

    def __init__(self, index):
        self.index = index

    def forward(self, x):
        self.x_shape, self.x_dtype = x.shape, x.dtype
        try:
            return x[self.index]
        except IndexError as err:
            raise IndexError(f"getitem: index {self.index!r} does not fit a tensor of shape {tuple(x.shape)}: {err}") from None

    def backward(self, gy):
        gx = backend.xp(gy).zeros(self.x_shape, dtype=self.x_dtype)
        parts = self.index if isinstance(self.index, tuple) else (self.index,)
        if any(hasattr(p, "shape") for p in parts):
            backend.primitives(gx).scatter_add(gx, self.index, gy)
        else:
            gx[self.index] = gy  # basic slicing picks each element at most once
        return gx


class Concatenate(Function):
    """y = [x₀, x₁, …] joined along ``axis``.   ∂L/∂xᵢ = the slice of ∂L/∂y where xᵢ landed."""

    def __init__(self, axis=0):
        self.axis = axis

    def forward(self, *xs):
        if xs[0].ndim == 0:
            raise ValueError("concatenate: cannot join 0-d tensors (they have no axis); reshape them to (1,) first")
        axis = self.axis = normalize_axis(self.axis, xs[0].ndim, "concatenate")
        others = [tuple(s for i, s in enumerate(x.shape) if i != axis) for x in xs]
        if any(x.ndim != xs[0].ndim for x in xs) or len(set(others)) > 1:
            raise ValueError(f"concatenate: inputs must have the same shape except along axis {self.axis}, "
                             f"got {', '.join(str(tuple(x.shape)) for x in xs)}")
        self.sizes = [x.shape[axis] for x in xs]
        return backend.primitives(xs[0]).concatenate(xs, axis)

    def backward(self, gy):
        return _split(gy, self.sizes, self.axis)


class Split(Function):
    """(y₀, y₁, …) = x cut along ``axis`` into pieces of the given sizes.   ∂L/∂x = the ∂L/∂yᵢ joined again."""

    def __init__(self, sizes, axis=0):
        self.sizes, self.axis = list(sizes), axis

    def forward(self, x):
        self.axis = normalize_axis(self.axis, x.ndim, "split")
        if sum(self.sizes) != x.shape[self.axis]:
            raise ValueError(f"split: sizes {self.sizes} add up to {sum(self.sizes)}, but axis {self.axis} of "
                             f"shape {tuple(x.shape)} has {x.shape[self.axis]} elements")
        return _split(x, self.sizes, self.axis)

    def backward(self, *gys):
        return backend.primitives(gys[0]).concatenate(gys, self.axis)


def _split(x, sizes, axis):
    offsets = [sum(sizes[:i + 1]) for i in range(len(sizes) - 1)]
    return tuple(backend.xp(x).split(x, offsets, axis=axis))


class ToDevice(Function):
    """y = x copied to another device (CPU ↔ GPU, GPU ↔ GPU).   ∂L/∂x = ∂L/∂y copied back."""

    def __init__(self, device):
        self.device = backend.parse_device(device)

    def forward(self, x):
        self.source = backend.device_of(x)
        return backend.to_device(x, self.device)

    def backward(self, gy):
        return backend.to_device(gy, self.source)


def reshape(x, *shape):
    shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    return Reshape(tuple(shape))(x)


def transpose(x, *axes):
    axes = axes[0] if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes
    return Transpose(tuple(axes) if axes else None)(x)


def flatten(x, start_axis=0, end_axis=-1):
    """Merge axes start_axis..end_axis into one: flatten((N, C, H, W), 1) -> (N, C·H·W)."""
    if x.ndim == 0:
        return Reshape((1,))(x)
    start, end = normalize_axis(start_axis, x.ndim, "flatten"), normalize_axis(end_axis, x.ndim, "flatten")
    if start > end:
        raise ValueError(f"flatten: start_axis {start_axis} comes after end_axis {end_axis} for shape {x.shape}")
    return Reshape(x.shape[:start] + (math.prod(x.shape[start:end + 1]),) + x.shape[end + 1:])(x)


def getitem(x, index):
    from ..tensor import Tensor

    def on_device(part):  # index arrays and lists go where the data is (CuPy wants CuPy indices)
        part = part.data if isinstance(part, Tensor) else part
        return backend.to_device(np.asarray(part), x.device) if isinstance(part, (list, np.ndarray)) else part

    parts = tuple(on_device(p) for p in (index if isinstance(index, tuple) else (index,)))
    return GetItem(parts if isinstance(index, tuple) else parts[0])(x)


def concatenate(tensors, axis=0):
    """Join tensors along an existing axis (``torch.cat``)."""
    from ..tensor import Tensor

    if isinstance(tensors, Tensor) or not all(isinstance(t, Tensor) for t in tensors):
        raise TypeError("concatenate: expected a list or tuple of Tensors, e.g. mg.cat([a, b], axis=1)")
    if len(tensors) == 0:
        raise ValueError("concatenate: needs at least one tensor")
    return Concatenate(axis)(*tensors)


cat = concatenate


def split(x, split_size_or_sections, axis=0):
    """Cut x along ``axis`` (``torch.split``): an int gives pieces of that size (the last may be smaller),
    a list gives the size of each piece."""
    if isinstance(split_size_or_sections, int):
        n, size = x.shape[normalize_axis(axis, x.ndim, "split")], split_size_or_sections
        if size <= 0:
            raise ValueError(f"split: piece size must be positive, got {size}")
        sections = [size] * (n // size) + ([n % size] if n % size else [])
    else:
        sections = list(split_size_or_sections)
    return Split(sections, axis)(x)
