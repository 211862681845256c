"""CUDA C sources of minigrad's GPU kernels (im2col.cu, lrn.cu, maxpool.cu).

This folder installs as ``minigrad.kernels`` (see pyproject.toml), with the .cu files as package data,
so ``pip install .`` ships them; minigrad/backend/cuda.py compiles them once per process with CuPy's
RawModule.  Each kernel's comment states its thread mapping.
"""
from importlib import resources

NAMES = ("im2col", "lrn", "maxpool")


def source(name: str) -> str:
    """The text of kernels/<name>.cu."""
    return resources.files(__name__).joinpath(f"{name}.cu").read_text()
