"""CuPy implementations of the per-backend primitives, and GPU bookkeeping.

CuPy is imported on first use only.  Without CuPy, or with CuPy but no usable
GPU, the first request for a CUDA device raises one RuntimeError that says
what is missing and how to fix it.
"""
from __future__ import annotations

import functools

INSTALL_HINT = (
    "Install the CuPy wheel that matches your CUDA toolkit, e.g. pip install 'minigrad[cuda]' "
    "(cupy-cuda12x, for CUDA 12) or pip install cupy-cuda11x (CUDA 11); `nvidia-smi` shows your CUDA version."
)


@functools.cache
def cupy():
    """The cupy module, after checking that it imports and sees at least one GPU."""
    try:
        import cupy as cp
    except ImportError as err:
        raise RuntimeError(f"minigrad: device 'cuda' needs CuPy, which is not installed ({err}). {INSTALL_HINT}") from None
    try:
        count = cp.cuda.runtime.getDeviceCount()
    except Exception as err:  # CUDA driver missing or broken: CuPy raises its own runtime error types
        raise RuntimeError(f"minigrad: CuPy is installed but cannot reach a GPU: {err}. "
                           "Check the NVIDIA driver (nvidia-smi) or use device='cpu'.") from None
    if count == 0:
        raise RuntimeError("minigrad: CuPy is installed but finds no CUDA GPU on this machine; use device='cpu'.")
    return cp


def current_device_index() -> int:
    return cupy().cuda.runtime.getDevice()


def check_index(index: int) -> None:
    count = cupy().cuda.runtime.getDeviceCount()
    if not 0 <= index < count:
        raise RuntimeError(f"minigrad: device 'cuda:{index}' does not exist: this machine has {count} GPU(s) "
                           f"(cuda:0 .. cuda:{count - 1}).")


def to_gpu(array, index: int):
    cp = cupy()
    check_index(index)
    with cp.cuda.Device(index):
        return cp.asarray(array)  # copies across GPUs or from the host; no copy when already there


def to_numpy(array):
    return cupy().asnumpy(array)


def make_generator(seed: int | None, index: int):
    cp = cupy()
    check_index(index)
    with cp.cuda.Device(index):
        return cp.random.default_rng(seed)


def scatter_add(target, index, values):
    """``target[index] += values`` where repeated indices add up; CuPy's version of ``np.add.at``."""
    import cupyx

    cupyx.scatter_add(target, index, values)


# The CUDA kernels for conv, max-pool and LRN are not written yet; until they are, a CNN cannot train here.
HAS_CNN_KERNELS = False


def __getattr__(name):
    # The CUDA kernels for im2col/col2im, max-pool and LRN are not written yet: say so plainly.
    if name in {"im2col", "col2im", "max_pool_forward", "max_pool_backward", "channel_window_sum"}:
        raise NotImplementedError(f"minigrad: the CUDA primitive {name} is not implemented yet, so conv2d, "
                                  "max_pool2d and local_response_norm run on device='cpu' only for now")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
