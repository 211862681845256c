"""NumPy implementations of the primitives that ops look up per backend (``backend.primitives(x)``).

Ops are written once against ``xp`` (numpy or cupy); only the few operations whose best
implementation differs between the two libraries live here and in ``cuda.py``, under the
same names and signatures.  The loops here run over kernel offsets (kh·kw of them) or
window positions (n of them), never over pixels, channels or the batch.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def scatter_add(target, index, values):
    """``target[index] += values`` where repeated indices add up (unlike plain ``+=``)."""
    np.add.at(target, index, values)


def _pad_hw(x, padding, value=0.0):
    ph, pw = padding
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value) if ph or pw else x


def _offset(x, i, j, stride, out_hw):
    """The strided slice of x that kernel offset (i, j) sees at every output position: (N, C, oH, oW)."""
    (sh, sw), (oh, ow) = stride, out_hw
    return x[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw]


# ----- convolution ----------------------------------------------------------------------------------
def im2col(x, kernel, stride, padding):
    """Unfold (N, C, H, W) into columns (C, kh, kw, N, oH, oW):

        cols[c, i, j, n, y, x] = x_padded[n, c, y·sh + i, x·sw + j]

    so that cols.reshape(C·kh·kw, N·oH·oW) holds one receptive field per column.
    A strided view does the unfolding; the only copy is the final transpose into that layout.
    """
    kh, kw = kernel
    sh, sw = stride
    windows = sliding_window_view(_pad_hw(x, padding), (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]  # (N, C, oH, oW, kh, kw)
    return np.ascontiguousarray(windows.transpose(1, 4, 5, 0, 2, 3))


def col2im(cols, x_shape, kernel, stride, padding):
    """The adjoint of im2col: add every column entry back onto the pixel it came from -> (N, C, H, W).

    A pixel covered by several windows (overlap) receives the sum; one strided add per kernel offset.
    """
    n, c, h, w = x_shape
    (kh, kw), (ph, pw) = kernel, padding
    out_hw = cols.shape[-2:]
    dx = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            _offset(dx, i, j, stride, out_hw)[...] += cols[:, i, j].transpose(1, 0, 2, 3)
    return dx[:, :, ph:ph + h, pw:pw + w]


# ----- max-pool -------------------------------------------------------------------------------------
def max_pool_forward(x, kernel, stride, padding, out_hw):
    """Max over each window -> (y, argmax), both (N, C, oH, oW).

    argmax holds the window-local offset i·kw + j of the maximum; ties go to the first in row-major
    order (the offsets are visited last to first and each equal value overwrites).  A NaN in a window
    makes its output NaN, as in PyTorch: a diverging network must not look healthy.
    """
    kh, kw = kernel
    x = _pad_hw(x, padding, value=-np.inf)
    offsets = [(i, j) for i in range(kh) for j in range(kw)]
    y = _offset(x, *offsets[0], stride, out_hw).copy()
    for i, j in offsets[1:]:
        np.maximum(y, _offset(x, i, j, stride, out_hw), out=y)      # propagates NaN
    argmax = np.zeros(y.shape, dtype=np.min_scalar_type(kh * kw - 1))
    nan = np.isnan(y)
    has_nan = bool(nan.any())   # the NaN test costs a pass per offset: only when a window holds one
    for i, j in reversed(offsets):
        values = _offset(x, i, j, stride, out_hw)
        where = values == y
        if has_nan:
            where |= nan & np.isnan(values)   # a NaN window: its arg-max is its first NaN
        np.copyto(argmax, i * kw + j, where=where)
    return y, argmax


def max_pool_backward(gy, argmax, x_shape, kernel, stride, padding):
    """Send each output gradient to the input pixel its window's maximum came from -> (N, C, H, W)."""
    n, c, h, w = x_shape
    (kh, kw), (ph, pw) = kernel, padding
    dx = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=gy.dtype)
    for i in range(kh):
        for j in range(kw):
            _offset(dx, i, j, stride, gy.shape[-2:])[...] += np.where(argmax == i * kw + j, gy, 0)
    return dx[:, :, ph:ph + h, pw:pw + w]


# ----- local response normalization -----------------------------------------------------------------
def channel_window_sum(x, before, after):
    """out[:, c] = Σ_{j = c − before}^{c + after} x[:, j], leaving out channels beyond 0..C−1.  x: (N, C, H, W).

    One shifted add per window position (before + after + 1 of them).
    """
    channels = x.shape[1]
    padded = np.pad(x, ((0, 0), (before, after), (0, 0), (0, 0)))
    out = padded[:, :channels].copy()
    for j in range(1, before + after + 1):
        out += padded[:, j:j + channels]
    return out


def lrn_forward(a, size, alpha, beta, k):
    """b = a · s^(−β) with s = k + α·Σ_window a² (see functional/lrn.py) -> (b, s)."""
    s = k + alpha * channel_window_sum(a * a, size // 2, (size - 1) // 2)
    return a * s ** -beta, s


def lrn_backward(a, s, g, size, alpha, beta):
    """∂L/∂a_i = g_i·s_i^(−β) − 2αβ·a_i·Σ_{j: i ∈ window(j)} g_j·b_j/s_j, the window turned around for the sum."""
    scale = s ** -beta
    g_b_over_s = g * a * scale / s
    return g * scale - 2 * alpha * beta * a * channel_window_sum(g_b_over_s, (size - 1) // 2, size // 2)
