"""Models built from minigrad.nn: the two-tower AlexNet of Krizhevsky, Sutskever & Hinton (2012)."""
from .alexnet import AlexNet, from_grouped, to_grouped

__all__ = ["AlexNet", "from_grouped", "to_grouped"]
