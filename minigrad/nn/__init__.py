"""minigrad.nn: Module and Parameter, the CNN layers, and initialisers."""
from . import init
from .layers import Conv2d, Dropout, Flatten, Linear, LocalResponseNorm, MaxPool2d, ReLU
from .module import Module, ModuleList, Parameter, Sequential

__all__ = ["Conv2d", "Dropout", "Flatten", "Linear", "LocalResponseNorm", "MaxPool2d", "Module", "ModuleList", "Parameter", "ReLU",
           "Sequential", "init"]
