"""Initialisers that fill a parameter in place (under no_grad, from minigrad's seeded generator)."""
import math

import numpy as np

from .. import backend
from ..tensor import Tensor


def fan_in(weight: Tensor) -> int:
    """Inputs that feed one output unit: in_features for Linear (out, in), C/g·kh·kw for Conv2d (O, C/g, kh, kw)."""
    return int(np.prod(weight.shape[1:]))


def normal_(tensor: Tensor, std: float = 1.0, mean: float = 0.0) -> Tensor:
    """Fill with samples of N(mean, std²).  The paper: std = 0.01 for every weight."""
    with backend.device_context(tensor.data):
        sample = backend.rng(tensor.device).standard_normal(tensor.shape, dtype=tensor.dtype)
        sample *= tensor.dtype.type(std)
        sample += tensor.dtype.type(mean)
        tensor.data[...] = sample
    return tensor


def constant_(tensor: Tensor, value: float) -> Tensor:
    """Fill with one value.  The paper: biases 1 in conv2, conv4, conv5, fc6 and fc7, 0 elsewhere."""
    with backend.device_context(tensor.data):
        tensor.data.fill(value)
    return tensor


def kaiming_normal_(tensor: Tensor) -> Tensor:
    """He et al. 2015: N(0, 2/fan_in), which keeps the variance of ReLU activations steady through depth."""
    return normal_(tensor, std=math.sqrt(2.0 / fan_in(tensor)))
