"""minigrad: a small, readable deep-learning framework on NumPy (CPU) and CuPy (GPU).

    import minigrad as mg
    import minigrad.functional as F
    x = mg.tensor([[1.0, 2.0]], requires_grad=True)
    loss = F.relu(x @ w).sum(); loss.backward(); x.grad
"""
import os as _os
import sys as _sys

# OpenBLAS's worker threads spin for ~0.1 s after each matmul, holding the cores on which minigrad's CPU
# primitives run their own threads (backend/cpu.py): a fifth of an AlexNet training step.  2⁴ cycles is
# OpenBLAS's shortest spin.  It reads the variable when NumPy loads it; if NumPy came first, it is told below.
_openblas_told_too_late = "numpy" in _sys.modules and "OPENBLAS_THREAD_TIMEOUT" not in _os.environ
_os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

from . import functional, nn, optim, trace, viz
from .backend import Device, manual_seed
from .backend import parse_device as device
from .creation import ones, randn, zeros
from .function import Function, is_grad_enabled, no_grad
from .functional import cat, concatenate, split
from .gradcheck import GradcheckError, gradcheck, gradient_table
from .serialization import load, save
from .tensor import Tensor, float32, float64, tensor

__all__ = ["Device", "Function", "GradcheckError", "Tensor", "cat", "concatenate", "device", "float32", "float64",
           "functional", "gradcheck", "gradient_table", "load", "nn", "optim", "save", "trace", "viz", "is_grad_enabled", "manual_seed", "no_grad", "ones", "randn", "split",
           "tensor", "zeros"]

__version__ = "0.1.0"

if _openblas_told_too_late:
    from .backend import cpu as _cpu
    _cpu.reread_openblas_settings()
