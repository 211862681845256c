"""CuPy implementations of the per-backend primitives, and GPU bookkeeping.

CuPy is imported on first use only.  Without CuPy, or with CuPy but no usable
GPU, the first request for a CUDA device raises one RuntimeError that says
what is missing and how to fix it.
"""
from __future__ import annotations

import functools

import numpy as np

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


# ----- custom kernels (kernels/*.cu) ----------------------------------------------------------------
THREADS = 256


@functools.cache
def _module(device_index: int):
    """kernels/*.cu compiled into one RawModule, once per GPU and process (CuPy also caches on disk)."""
    from minigrad import kernels

    cp = cupy()
    names = [f"{kernel}<{t}>" for kernel in ("im2col", "col2im", "lrn_forward", "lrn_backward", "max_pool_forward",
                                             "max_pool_backward") for t in ("float", "double")]
    with cp.cuda.Device(device_index):
        return cp.RawModule(code="\n".join(kernels.source(n) for n in kernels.NAMES), options=("-std=c++14",),
                            name_expressions=names)


def _launch(name: str, total: int, arrays, ints=(), reals=()) -> None:
    """Run kernel ``name`` for the dtype of ``arrays[0]`` over ``total`` work items.

    Scalars are passed with explicit NumPy types (int32 for ``int``, the array's type for ``T``): a bare
    Python number would reach the kernel as a 64-bit value and scramble the arguments after it.
    """
    cp = cupy()
    dtype = arrays[0].dtype
    if dtype not in (cp.float32, cp.float64):
        raise TypeError(f"minigrad: the CUDA kernel {name} supports float32 and float64, got {dtype}")
    kernel = _module(cp.cuda.runtime.getDevice()).get_function(f"{name}<{'float' if dtype == cp.float32 else 'double'}>")
    blocks = max(1, min(-(-total // THREADS), 65535 * 8))   # the kernels loop, so a capped grid is fine
    args = (*arrays, *(np.int32(v) for v in ints), *(dtype.type(v) for v in reals))
    kernel((blocks,), (THREADS,), args)


def _geometry(x_shape, kernel, stride, padding, out_hw):
    """The integer arguments shared by the im2col and max-pool kernels: N, C, H, W, kh, kw, sh, sw, ph, pw, oH, oW."""
    return (*x_shape, *kernel, *stride, *padding, *out_hw)


def im2col(x, kernel, stride, padding):
    """(N, C, H, W) -> columns (C, kh, kw, N, oH, oW), as cpu.im2col; kernels/im2col.cu."""
    cp = cupy()
    n, c, h, w = x.shape
    out_hw = tuple((size + 2 * p - k) // s + 1 for size, k, s, p in zip((h, w), kernel, stride, padding))
    cols = cp.empty((c, *kernel, n, *out_hw), dtype=x.dtype)
    _launch("im2col", cols.size, (cp.ascontiguousarray(x), cols), _geometry(x.shape, kernel, stride, padding, out_hw))
    return cols


def col2im(cols, x_shape, kernel, stride, padding):
    """The adjoint of im2col as a gather (one thread per pixel, no atomics); kernels/im2col.cu."""
    cp = cupy()
    dx = cp.empty(x_shape, dtype=cols.dtype)
    _launch("col2im", dx.size, (cp.ascontiguousarray(cols), dx), _geometry(x_shape, kernel, stride, padding, cols.shape[-2:]))
    return dx


def conv_output(x, w_g, kernel, stride, padding, out_hw, bias=None):
    """As cpu.conv_output.  On the GPU the batched form is the fast one: im2col of the whole batch, one
    matmul per group, and the (O, N, ·) result turned into (N, O, ·)."""
    groups, per_group, k = w_g.shape
    y_g = w_g @ im2col(x, kernel, stride, padding).reshape(groups, k, -1)          # (g, O/g, N·oH·oW)
    if bias is not None:
        y_g += bias.reshape(groups, per_group, 1)
    return transposed_copy(y_g.reshape(groups * per_group, len(x), *out_hw), (1, 0, 2, 3))


def conv_input_grad(gy, w_g, x_shape, kernel, stride, padding):
    """As cpu.conv_input_grad, batched: ∂y as (g, O/g, N·oH·oW), one matmul per group, then col2im."""
    groups, per_group, k = w_g.shape
    gy_g = transposed_copy(gy, (1, 0, 2, 3)).reshape(groups, per_group, len(gy) * gy.shape[2] * gy.shape[3])
    gcols = w_g.transpose(0, 2, 1) @ gy_g                                           # (g, K, N·oH·oW)
    return col2im(gcols.reshape(x_shape[1], *kernel, x_shape[0], *gy.shape[2:]), x_shape, kernel, stride, padding)


def conv_weight_grad(x, gy, groups, kernel, stride, padding):
    """As cpu.conv_weight_grad, batched: ∂Y (g, O/g, N·oH·oW) @ im2col(x)ᵀ, one matmul per group."""
    gy_g = transposed_copy(gy, (1, 0, 2, 3)).reshape(groups, gy.shape[1] // groups, -1)
    k = x.shape[1] // groups * kernel[0] * kernel[1]
    return gy_g @ im2col(x, kernel, stride, padding).reshape(groups, k, -1).transpose(0, 2, 1)


def keeps_columns(out_hw) -> bool:
    """As cpu.keeps_columns: on the GPU, always (memory is fast, unfolding again is work for nothing)."""
    return True


def unfolds_channels_last(out_hw) -> bool:
    """As cpu.unfolds_channels_last: never on the GPU, where the im2col kernel writes im2col's layout at full
    speed (cuda.py has no conv_output_channels_last)."""
    return False


def in_chunks(work, groups):
    """``work(*arrays)`` for each group: CuPy's element-wise kernels already use the whole GPU (cpu.in_chunks
    splits for the cache)."""
    for arrays in groups:
        work(*arrays)


def relu(x):
    return cupy().maximum(x, 0)


def relu_backward(gy, y):
    return gy * (y > 0)


def transposed_copy(x, axes):
    """``x.transpose(axes)`` as a new C-contiguous array, as cpu.transposed_copy."""
    return cupy().ascontiguousarray(x.transpose(axes))


def concatenate(arrays, axis):
    """As cpu.concatenate."""
    return cupy().concatenate(arrays, axis=axis)


def max_pool_forward(x, kernel, stride, padding, out_hw, need_argmax=True):
    """(y, argmax) as cpu.max_pool_forward (argmax as int32, always: the kernel finds both in one pass);
    kernels/maxpool.cu."""
    cp = cupy()
    y = cp.empty((*x.shape[:2], *out_hw), dtype=x.dtype)
    argmax = cp.empty(y.shape, dtype=cp.int32)
    _launch("max_pool_forward", y.size, (cp.ascontiguousarray(x), y, argmax),
            _geometry(x.shape, kernel, stride, padding, out_hw))
    return y, argmax


def max_pool_backward(gy, argmax, x_shape, kernel, stride, padding):
    cp = cupy()
    dx = cp.empty(x_shape, dtype=gy.dtype)
    _launch("max_pool_backward", dx.size, (cp.ascontiguousarray(gy), argmax, dx),
            _geometry(x_shape, kernel, stride, padding, gy.shape[-2:]))
    return dx


def lrn_forward(a, size, alpha, beta, k):
    """(b, s) as cpu.lrn_forward, in one pass per (n, y, x) column; kernels/lrn.cu."""
    cp = cupy()
    a = cp.ascontiguousarray(a)
    b, s = cp.empty(a.shape, a.dtype), cp.empty(a.shape, a.dtype)    # C order, whatever a's layout was
    n, c, h, w = a.shape
    _launch("lrn_forward", n * h * w, (a, b, s), (n, c, h * w, size // 2, (size - 1) // 2), (alpha, beta, k))
    return b, s


def lrn_backward(a, s, g, size, alpha, beta):
    cp = cupy()
    a, s, g = cp.ascontiguousarray(a), cp.ascontiguousarray(s), cp.ascontiguousarray(g)   # the kernel indexes NCHW
    da = cp.empty(a.shape, a.dtype)
    n, c, h, w = a.shape
    _launch("lrn_backward", n * h * w, (a, s, g, da), (n, c, h * w, size // 2, (size - 1) // 2), (alpha, beta))
    return da
