"""2-D convolution by im2col, with groups (Krizhevsky et al. 2012: every conv layer; groups=2 is the
two-GPU split of conv2, conv4 and conv5)."""
import operator

from .. import backend
from ..function import Function


def pair(value, name: str) -> tuple:
    """3 -> (3, 3); (3, 5) stays.  For kernel sizes, strides and paddings (NumPy integers are fine)."""
    try:
        result = (operator.index(value),) * 2 if not isinstance(value, (tuple, list)) else tuple(map(operator.index, value))
    except TypeError:
        result = ()
    if len(result) != 2:
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    return result


def output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output positions along one axis: ⌊(size + 2·padding − kernel) / stride⌋ + 1."""
    return (size + 2 * padding - kernel) // stride + 1


def check_kernel_fits(op: str, x_shape, kernel, padding) -> None:
    """A clear error when a kernel is larger than the padded input (N, C, H, W) along either axis."""
    for axis, size, k, p in (("height", x_shape[2], kernel[0], padding[0]), ("width", x_shape[3], kernel[1], padding[1])):
        if size + 2 * p < k:
            raise ValueError(f"{op}: kernel {k} does not fit input {axis} {size} with padding {p}")


class Conv2d(Function):
    """y = w ⋆ x + b, a cross-correlation like every framework's "convolution".

    x: (N, C, H, W), w: (O, C/g, kh, kw), b: (O,)  ->  y: (N, O, oH, oW),  oH = ⌊(H + 2·ph − kh)/sh⌋ + 1.
    Group γ (of g) sees input channels γ·C/g … (γ+1)·C/g − 1 and makes outputs γ·O/g … (γ+1)·O/g − 1.

    forward:   cols = im2col(x) as (g, K, N·L), K = C/g·kh·kw, L = oH·oW  (one receptive field per column)
               Y = W @ cols, with W = w as (g, O/g, K): ONE batched matmul over the groups
    backward:  ∂W = ∂Y @ colsᵀ,   ∂cols = Wᵀ @ ∂Y,   ∂x = col2im(∂cols),   ∂b = Σ_{n,y,x} ∂y

    (With stride 1 along x and ∂y at least as wide as x, the CPU splits ∂x's sum over the kernel instead:
    over its columns in a matmul, over its rows by adding whole rows of the image.  No more multiplications,
    far fewer values moved.)

    ∂W sums over the batch, so it needs every image's columns.  Forward keeps them when the backend says
    so (``keeps_columns``: the GPU always, the CPU for small maps); otherwise it keeps x, and the backend's
    ``conv_weight_grad`` unfolds it again.  For output rows shorter than 8 the CPU keeps them channels-last,
    one receptive field per row, the products the same (``unfolds_channels_last``: im2col's layout copies a
    run per row of the output, and NumPy's overhead per run costs more than the copying).  That, the output
    when the columns are not kept, and ∂x go through the backend (``conv_weight_grad``, ``conv_output``,
    ``conv_input_grad``): the GPU runs them batched as above, the CPU on blocks of images per core, so that
    a block's columns pass from one step to the next through the core's cache (backend/cpu.py).

    Memory bound: the columns hold kh·kw copies of the input.  When they would take more than
    ``max_column_bytes``, the batch runs in chunks, and nothing keeps columns.
    """

    max_column_bytes = 2 * 2**30

    def __init__(self, stride=(1, 1), padding=(0, 0), groups=1):
        self.stride, self.padding, self.groups = stride, padding, groups

    def forward(self, x, w, *bias):
        xp = backend.xp(x)
        n, c, h, wd = x.shape
        o, c_g, kh, kw = w.shape
        self.x_shape, self.w_shape = x.shape, w.shape
        self.out_hw = (output_size(h, kh, self.stride[0], self.padding[0]),
                       output_size(wd, kw, self.stride[1], self.padding[1]))
        self.w_g = w.reshape(self.groups, o // self.groups, c_g * kh * kw)
        column_bytes = c * kh * kw * self.out_hw[0] * self.out_hw[1] * x.itemsize    # per image
        self.chunk = max(1, min(n, self.max_column_bytes // column_bytes))
        prims = backend.primitives(x)
        keep_columns = self.needs_input_grad[1] and self.chunk >= n and prims.keeps_columns(self.out_hw)
        self.channels_last = keep_columns and prims.unfolds_channels_last(self.out_hw)
        y_chunks = []
        for start in range(0, max(n, 1), self.chunk):                       # (an empty batch: one empty chunk)
            x_chunk = x[start:start + self.chunk]
            if self.channels_last:          # the CPU on small maps: the same products, another layout
                y, cols = prims.conv_output_channels_last(x_chunk, self.w_g, (kh, kw), self.stride, self.padding,
                                                          self.out_hw, bias[0] if bias else None)
                y_chunks.append(y)
            elif keep_columns:
                cols = self._columns(x_chunk)
                y_g = self.w_g @ cols                                        # (g, O/g, n·L)
                if bias:
                    y_g += bias[0].reshape(*self.w_g.shape[:2], 1)
                y_chunks.append(prims.transposed_copy(y_g.reshape(o, -1, *self.out_hw), (1, 0, 2, 3)))
            else:
                y_chunks.append(prims.conv_output(x_chunk, self.w_g, (kh, kw), self.stride, self.padding, self.out_hw,
                                                  bias[0] if bias else None))
        y = _joined(y_chunks, xp)
        # Keep what backward will use: the columns (or x to unfold again) for ∂w, the weights for ∂x.
        if self.needs_input_grad[1]:
            self.cols, self.x = (cols, None) if keep_columns else (None, x)
        if not self.needs_input_grad[0]:
            self.w_g = None
        return y

    def _columns(self, x):
        """im2col of x as (g, K, n·L)."""
        cols = backend.primitives(x).im2col(x, self.w_shape[2:], self.stride, self.padding)
        return cols.reshape(self.w_g.shape[0], self.w_g.shape[2], -1)

    def backward(self, gy):
        xp = backend.xp(gy)
        o, c_g, kh, kw = self.w_shape
        n, g = self.x_shape[0], self.groups
        prims = backend.primitives(gy)
        chunks = [slice(start, start + self.chunk) for start in range(0, max(n, 1), self.chunk)]
        gx = gw = None
        if self.needs_input_grad[0]:
            gx = _joined([prims.conv_input_grad(gy[rows], self.w_g, (len(gy[rows]), *self.x_shape[1:]), (kh, kw),
                                                self.stride, self.padding) for rows in chunks], xp)
        if self.needs_input_grad[1]:
            if self.channels_last:
                gw = prims.conv_weight_grad_channels_last(self.cols, gy, g, (kh, kw))
            elif self.cols is not None:
                gy_g = prims.transposed_copy(gy, (1, 0, 2, 3)).reshape(g, o // g, -1)    # (g, O/g, N·L)
                # as ∂Wᵀ = cols @ ∂Yᵀ: the same products; OpenBLAS ran conv5's 9.5 -> 8.4 ms a tower (conv3's
                # 30.7 -> 32.0) and the CPU preset's conv1 2.5 -> 1.7
                gw = (self.cols @ gy_g.transpose(0, 2, 1)).transpose(0, 2, 1)
            else:
                per_chunk = [prims.conv_weight_grad(self.x[rows], gy[rows], g, (kh, kw), self.stride, self.padding)
                             for rows in chunks]
                gw = per_chunk[0]
                for term in per_chunk[1:]:
                    gw += term
            gw = gw.reshape(self.w_shape)
        if len(self.needs_input_grad) == 2:
            return gx, gw
        # ∂b = Σ_{n,y,x} ∂y; einsum ran 2-4× faster than gy.sum(axis=(0, 2, 3)) on AlexNet's maps (conv1 at the
        # CPU preset: 76 -> 26 µs; the full network's: 1.8 -> 1.3 ms)
        gb = xp.einsum("noyx->o", gy) if self.needs_input_grad[2] else None
        return gx, gw, gb


def _joined(chunks, xp):
    """The results of the batch's chunks as one array (a single chunk as it is: no copy)."""
    return chunks[0] if len(chunks) == 1 else xp.concatenate(chunks)


def conv2d(x, w, b=None, stride=1, padding=0, groups=1):
    """2-D convolution of x (N, C, H, W) with w (O, C/groups, kh, kw), plus bias b (O,).  See ``Conv2d``."""
    stride, padding = pair(stride, "conv2d: stride"), pair(padding, "conv2d: padding")
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError(f"conv2d: expected input (N, C, H, W) and weight (O, C/groups, kh, kw), got input shape "
                         f"{x.shape} and weight shape {w.shape}")
    o, c_g, kh, kw = w.shape
    if groups < 1 or o % groups:
        raise ValueError(f"conv2d: groups={groups} must be ≥ 1 and divide the {o} output channels")
    if x.shape[1] != c_g * groups:
        raise ValueError(f"conv2d: expected input of shape (N, {c_g * groups}, H, W) for weight {w.shape} with "
                         f"groups={groups}, got {x.shape}")
    if b is not None and b.shape != (o,):
        raise ValueError(f"conv2d: bias must have shape ({o},), got {b.shape}")
    if min(stride) < 1 or min(padding) < 0:
        raise ValueError(f"conv2d: stride must be ≥ 1 and padding ≥ 0, got stride={stride}, padding={padding}")
    check_kernel_fits("conv2d", x.shape, (kh, kw), padding)
    inputs = (x, w) if b is None else (x, w, b)
    return Conv2d(stride, padding, groups)(*inputs)
