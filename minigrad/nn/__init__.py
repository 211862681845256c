"""minigrad.nn: Module and Parameter, the CNN layers, and initialisers."""
from . import init
from .layers import Conv2d, Dropout, Flatten, Linear, LocalResponseNorm, MaxPool2d, ReLU
from .module import Module, Parameter, Sequential

__all__ = ["Conv2d", "Dropout", "Flatten", "Linear", "LocalResponseNorm", "MaxPool2d", "Module", "Parameter", "ReLU",
           "Sequential", "init"]
