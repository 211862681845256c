"""The seam between NumPy (CPU) and CuPy (GPU).

This package is the only place in minigrad that knows whether an array lives
in host memory or on a GPU.  Everything else asks it:

    xp = backend.xp(array)               # numpy or cupy, whichever owns the array
    backend.device_of(array)             # Device('cpu') or Device('cuda', 0)
    backend.to_device(array, "cuda:1")   # move (or return as is)
    backend.primitives(array)            # cpu.py or cuda.py: the hot primitives

CuPy is imported only when a CUDA device is first asked for (see cuda.py), so
``import minigrad`` works on a machine without it.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np

from . import cpu


@dataclass(frozen=True)
class Device:
    """Where an array lives: ``Device('cpu')`` or ``Device('cuda', index)``."""

    type: str
    index: int | None = None

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self) -> str:
        return f"device('{self}')"


CPU = Device("cpu")


def parse_device(device) -> Device:
    """Accept 'cpu', 'cuda', 'cuda:N' or a Device; 'cuda' means the current GPU (0 unless changed)."""
    if isinstance(device, Device):
        return device
    if not isinstance(device, str):
        raise TypeError(f"device must be a string such as 'cpu', 'cuda' or 'cuda:1', got {device!r}")
    name, _, index = device.strip().lower().partition(":")
    if name == "cpu" and not index:
        return CPU
    if name == "cuda":
        if not index:
            return Device("cuda", cuda_backend().current_device_index())
        if index.isdigit():
            return Device("cuda", int(index))
    raise ValueError(f"unknown device {device!r}: expected 'cpu', 'cuda' or 'cuda:N' (N a GPU number)")


def cuda_backend():
    """The CUDA backend module; importing it imports nothing heavy, CuPy comes on first use."""
    from . import cuda

    return cuda


def cuda_available() -> bool:
    """True when CuPy is installed and sees at least one GPU (never raises)."""
    try:
        cuda_backend().cupy()
    except RuntimeError:
        return False
    return True


def is_cupy(array) -> bool:
    # Decided from the type's module so that CuPy never has to be imported to answer.
    return type(array).__module__.split(".")[0] == "cupy"


def xp(array):
    """The array module (numpy or cupy) that owns ``array``."""
    return cuda_backend().cupy() if is_cupy(array) else np


def primitives(array):
    """The module of hot primitives (``cpu`` or ``cuda``) for the array's device."""
    return cuda_backend() if is_cupy(array) else cpu


def device_of(array) -> Device:
    if is_cupy(array):
        return Device("cuda", array.device.id)
    return CPU


def to_device(array, device):
    """``array`` on ``device`` (the same object when it is already there)."""
    device = parse_device(device)
    if device.type == "cpu":
        return cuda_backend().to_numpy(array) if is_cupy(array) else array
    return cuda_backend().to_gpu(array, device.index)


def to_numpy(array) -> np.ndarray:
    """A host (NumPy) copy of the array, whichever device it is on."""
    return cuda_backend().to_numpy(array) if is_cupy(array) else np.array(array, copy=True)


def zeros(shape, dtype, device):
    """An array of zeros on ``device``."""
    with on_device(device):
        return (np if parse_device(device).type == "cpu" else cuda_backend().cupy()).zeros(shape, dtype=dtype)


def on_device(device):
    """Context that makes ``device`` current when it is a GPU (CuPy allocates and launches on the
    current GPU); a no-op for the CPU."""
    device = parse_device(device)
    return contextlib.nullcontext() if device.type == "cpu" else cuda_backend().cupy().cuda.Device(device.index)


def device_context(array):
    """``on_device`` for the device that holds ``array``."""
    return on_device(device_of(array))


# ----- random numbers ---------------------------------------------------------------------------
_seed: int | None = None
_generators: dict[Device, object] = {}


def manual_seed(seed: int) -> None:
    """Seed every random source minigrad uses: the CPU generator and one generator per GPU."""
    global _seed
    _seed = int(seed)
    _generators.clear()


def rng(device=CPU):
    """The random generator for ``device``; it offers ``standard_normal(shape, dtype)`` and ``random(shape, dtype)``.

    Each GPU gets its own generator, seeded with seed + 1 + its index, so no stream
    depends on the order in which devices were first used.
    """
    device = parse_device(device)
    if device not in _generators:
        if device.type == "cpu":
            _generators[device] = np.random.default_rng(_seed)
        else:
            seed = None if _seed is None else _seed + 1 + device.index
            _generators[device] = cuda_backend().make_generator(seed, device.index)
    return _generators[device]
