"""NumPy implementations of the primitives that ops look up per backend.

Ops are written once against ``xp`` (numpy or cupy); only the few operations
whose best implementation differs between the two libraries live here and in
``cuda.py``, under the same names and signatures.
"""
import numpy as np


def scatter_add(target, index, values):
    """``target[index] += values`` where repeated indices add up (unlike plain ``+=``)."""
    np.add.at(target, index, values)
