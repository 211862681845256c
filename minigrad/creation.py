"""Tensors made from scratch: zeros, ones, and normal random numbers from minigrad's seeded generator."""
import numpy as np

from . import backend
from .tensor import Tensor, tensor


def _shape(shape) -> tuple:
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else tuple(shape)


def zeros(*shape, requires_grad=False, device="cpu", dtype=np.float32) -> Tensor:
    return tensor(np.zeros(_shape(shape), dtype=dtype), requires_grad=requires_grad, device=device)


def ones(*shape, requires_grad=False, device="cpu", dtype=np.float32) -> Tensor:
    return tensor(np.ones(_shape(shape), dtype=dtype), requires_grad=requires_grad, device=device)


def randn(*shape, requires_grad=False, device="cpu", dtype=np.float32) -> Tensor:
    """Samples of N(0, 1), drawn on ``device`` from the generator that ``mg.manual_seed`` seeds."""
    with backend.on_device(device):
        data = backend.rng(device).standard_normal(_shape(shape), dtype=dtype)
    return Tensor(data, requires_grad=requires_grad)
