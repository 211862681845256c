"""minigrad.functional: every differentiable op as a function (``import minigrad.functional as F``).

Each function builds one Function (an op class with forward and backward side by side)
from the file named after its topic: math.py, reduce.py, shape.py, loss.py, conv.py, pool.py,
lrn.py, dropout.py, linear.py.
"""
from .conv import conv2d
from .dropout import dropout
from .linear import linear
from .loss import cross_entropy, log_softmax
from .lrn import local_response_norm
from .math import add, div, exp, log, matmul, mul, neg, pow, relu, sqrt, sub
from .pool import max_pool2d
from .reduce import max, mean, sum
from .shape import cat, concatenate, flatten, getitem, reshape, split, transpose

__all__ = ["add", "sub", "mul", "div", "neg", "pow", "exp", "log", "sqrt", "relu", "matmul",
           "sum", "mean", "max", "reshape", "transpose", "flatten", "getitem", "concatenate", "cat", "split",
           "log_softmax", "cross_entropy", "conv2d", "max_pool2d", "local_response_norm", "dropout", "linear"]
