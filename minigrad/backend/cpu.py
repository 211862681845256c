"""NumPy implementations of the primitives that ops look up per backend (``backend.primitives(x)``).

Ops are written once against ``xp`` (numpy or cupy); only the few operations whose best
implementation differs between the two libraries live here and in ``cuda.py``, under the
same names and signatures.  The loops here run over kernel offsets (kh·kw of them), window
positions (n of them) or cache-sized blocks of the batch, never over pixels or channels.

Every core works: NumPy's element-wise loops and copies run on one core, but they release the
GIL, so the primitives split the batch into one part per core and run the parts on threads
(``over_batch``).  The matmuls need no help: BLAS already uses every core.  Except in the
convolution's output, its ∂x, and its ∂W for large maps: there each core unfolds and multiplies its
own blocks of images, with BLAS on one thread meanwhile (``over_images``), so that a block's columns
go from one step to the next through the cache instead of through memory.
"""
import contextlib
import ctypes
import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
# Elements below which one thread is faster than handing out the work (for every primitive here: the
# element-wise ops, the convolution's blocks, the optimiser's update): a hand-out wakes a sleeping thread,
# 70-130 µs on the 2-core VM measured.  There, ReLU, transposes, LRN and max-pool ran faster on one thread up
# to about 256 k float32 values (LRN forward at 173 k: 539 µs on two threads, 359 on one), on two above
# about 350 k (at 346 k: 676 against 830).  The CPU preset's training step at batch 64: 50-51 -> 48 ms;
# the full network's, unchanged.
SMALL = 1 << 18


@functools.cache
def _workers():
    return ThreadPoolExecutor(CORES - 1, thread_name_prefix="minigrad-cpu")


if hasattr(os, "register_at_fork"):     # a forked child has none of the parent's threads: it makes its own
    os.register_at_fork(after_in_child=_workers.cache_clear)


_in_a_part = threading.local()    # .active: this thread is running a part of over_batch


def over_batch(array, work) -> None:
    """Call ``work(part)`` for slices ``part`` of ``range(len(array))`` that together cover the batch,
    one per core, and wait for all of them.  ``work`` must only write where its part says.
    A 0-d array has no batch: ``work(...)`` once.  Called from inside a part (a primitive used by
    another one's parts), the whole batch is one part: every core is busy already."""
    if array.ndim == 0:
        work(...)
        return
    n, pieces = len(array), _pieces(array)
    bounds = [n * k // pieces for k in range(pieces + 1)]
    _run_parts(work, [slice(a, b) for a, b in zip(bounds, bounds[1:])])


def _run_parts(work, parts) -> None:
    """``work(part)`` for every part, each on a thread of its own, and wait for all of them."""
    if len(parts) == 1:
        work(parts[0])
        return
    others = [_workers().submit(_as_a_part, work, part) for part in parts[1:]]
    _as_a_part(work, parts[0])    # the calling thread takes the first part itself
    for future in others:
        future.result()


def _pieces(array) -> int:
    """How many parts over_batch makes of ``array``: one per core (``_cores_for``), at most one per row."""
    return 1 if array.ndim == 0 else max(1, min(len(array), _cores_for(array.size)))


def _cores_for(size) -> int:
    """The cores that work on ``size`` elements: all of them, or one when that is small or when this thread
    is already running a part."""
    return 1 if size < SMALL or getattr(_in_a_part, "active", False) else CORES


def _as_a_part(work, part) -> None:
    before, _in_a_part.active = getattr(_in_a_part, "active", False), True
    try:
        work(part)
    finally:
        _in_a_part.active = before


def over_blocks(array, work, block_bytes, row_bytes=None) -> None:
    """``over_batch``, with each part handed to ``work`` a block of rows at a time (about ``block_bytes``,
    at least one row; a row is ``row_bytes``, by default one row of ``array``).  For a formula of several
    NumPy steps: each step over a whole array would stream it through memory again; on a cache-sized
    block only the first read and the last write reach memory."""
    if array.ndim == 0:
        work(...)
        return
    row_bytes = row_bytes or _row_bytes(array)
    over_batch(array, lambda part: [work(block) for block in _blocks(part, block_bytes, row_bytes)])


def _row_bytes(array) -> int:
    """The bytes of one row of ``array`` (all of it after the first axis)."""
    return array.itemsize * int(np.prod(array.shape[1:]))


def _blocks(part, block_bytes, row_bytes) -> list:
    """The slice ``part`` cut into slices of about ``block_bytes`` (at least one row of ``row_bytes``), in order."""
    rows = max(1, block_bytes // max(1, row_bytes))
    return [slice(i, min(i + rows, part.stop)) for i in range(part.start, part.stop, rows)]


@functools.cache
def _blas_threads():
    from threadpoolctl import ThreadpoolController   # finds the loaded BLAS, whichever it is (OpenBLAS, MKL, ...)
    return ThreadpoolController()


@contextlib.contextmanager
def cores(count: int):
    """Within the block, the primitives here and BLAS use ``count`` cores (threads) in this process: for
    ``minigrad.parallel``, where each process takes one core and a shard of the batch."""
    global CORES
    previous, CORES = CORES, count
    try:
        with _blas_threads().limit(limits=count, user_api="blas"):
            yield
    finally:
        CORES = previous


_one_blas_thread = threading.Lock()   # one over_images at a time sets and restores BLAS's thread count


@contextlib.contextmanager
def _blas_on_one_thread():
    with _one_blas_thread, _blas_threads().limit(limits=1, user_api="blas"):
        yield


# The columns of a block of images: about 6 MiB, at least one image.  Large maps get one image a block
# (AlexNet's conv1 and conv2: 4.4 and 3.5 MB of columns); small ones several, so that the matmul is
# wide enough to run at full speed (conv3-5 at 13 × 13: 169 columns an image, 3-8 images a block).
# Measured on 2 cores against 1 MiB (one image of those): conv4's ∂x 20.5 -> 16.8 ms, conv5's 14 -> 11,
# conv3's 48 -> 43; 4 to 10 MiB ran alike.
IMAGE_BLOCK_BYTES = 6 << 20


def over_images(array, work, bytes_per_image) -> None:
    """``over_blocks`` for work that runs matmuls of its own, on blocks of images of about
    ``IMAGE_BLOCK_BYTES`` (``bytes_per_image`` each; at least one image), BLAS on one thread meanwhile
    (``_blas_for_parts``)."""
    with _blas_for_parts(array):
        over_blocks(array, work, IMAGE_BLOCK_BYTES, bytes_per_image)


def sum_over_images(array, product, bytes_per_image):
    """Σ of ``product(block)`` over the blocks of ``over_images`` (None for an empty batch).

    Each part adds up its own blocks in order, then the parts' sums are added in order: a float sum
    depends on its order, and this one must not depend on which thread happened to run which part.
    """
    sums = {}                                   # a part's first image -> the sum of the part's blocks

    def work(part):
        total = None
        for block in _blocks(part, IMAGE_BLOCK_BYTES, bytes_per_image):
            term = product(block)
            total = term if total is None else np.add(total, term, out=total)
        if total is not None:
            sums[part.start] = total
    with _blas_for_parts(array):
        over_batch(array, work)
    ordered = [sums[start] for start in sorted(sums)]
    for term in ordered[1:]:
        ordered[0] += term
    return ordered[0] if ordered else None


def _blas_for_parts(array):
    """BLAS on one thread when ``array``'s batch makes several parts that each run matmuls: every core
    has a part, BLAS's own threads would only compete.  With one part (a small batch) BLAS keeps them."""
    return _blas_on_one_thread() if _pieces(array) > 1 else contextlib.nullcontext()


def in_chunks(work, groups) -> None:
    """Call ``work(*blocks)`` on matching blocks of about 512 KiB of rows of every group of arrays in ``groups``
    (a group's arrays have equal length along axis 0): the optimiser's update, ``groups`` one (w, ∂L/∂w, v) per
    parameter.  The blocks of all groups are dealt to the cores in runs of about equal size: one hand-out for
    the whole model instead of one per parameter.

    Measured on AlexNet's SGD step (2 cores): blocks of 256 KiB 71 ms, 512 KiB 61 ms, 2 MiB 73 ms (smaller
    blocks pay Python's overhead, larger ones leave the cache); one hand-out for all 16 parameters instead of
    one each, 56-59 -> 52 ms.
    """
    blocks = []
    for arrays in groups:
        first = arrays[0]
        if first.ndim == 0:
            blocks.append(arrays)
            continue
        blocks += [[a[rows] for a in arrays] for rows in _blocks(slice(0, len(first)), 1 << 19, _row_bytes(first))]
    if not blocks:
        return
    ends = np.cumsum([block[0].size for block in blocks])      # elements up to the end of each block
    pieces = _cores_for(ends[-1])
    runs = [[] for _ in range(pieces)]
    for block, end in zip(blocks, ends):
        runs[min(pieces - 1, int((end - 1) * pieces // ends[-1]))].append(block)
    _run_parts(lambda run: [work(*block) for block in run], [run for run in runs if run])


def keep_freed_memory() -> None:
    """Ask glibc's malloc to keep large freed blocks for reuse instead of giving them back to the system.

    A training step allocates and frees the same large arrays (columns, activations) every step.  By
    default glibc serves each with mmap and returns it on free, so the next step takes a page fault
    and the kernel zeroes every 4 KiB page again: about a tenth of an AlexNet step on the CPU.  With
    mmap off, freed blocks stay in the heap and are reused; the process keeps its peak size (as
    PyTorch's caching allocators do).  No effect outside glibc.
    """
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
    mallopt(M_MMAP_MAX, 0)
    mallopt(M_TRIM_THRESHOLD, 2**31 - 1)    # (an int) do not hand the top of the heap back either


def reread_openblas_settings() -> None:
    """Make an OpenBLAS that is already loaded re-read its OPENBLAS_* environment variables.

    It reads them once, when it loads; its worker threads take the new settings when the next matmul
    restarts them after ``blas_thread_shutdown_``.  Linux only (the library is found in /proc/self/maps);
    a BLAS without these two functions is left as it is.
    """
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.rsplit("/", 1)[-1].lower()}
    except OSError:
        return
    for path in paths:
        try:
            library = ctypes.CDLL(path)
            read_environment, stop_threads = library.openblas_read_env, library.blas_thread_shutdown_
        except (OSError, AttributeError):
            continue
        read_environment()
        stop_threads()


keep_freed_memory()


def scatter_add(target, index, values):
    """``target[index] += values`` where repeated indices add up (unlike plain ``+=``)."""
    np.add.at(target, index, values)


def _pad_hw(x, padding, value=0.0):
    (ph, pw), (h, w) = padding, x.shape[2:]
    if not ph and not pw:
        return x
    padded = np.empty((*x.shape[:2], h + 2 * ph, w + 2 * pw), dtype=x.dtype)

    def work(part):
        padded[part] = value
        padded[part, :, ph:ph + h, pw:pw + w] = x[part]
    over_batch(x, work)
    return padded


def _offset(x, i, j, stride, out_hw):
    """The strided slice of x that kernel offset (i, j) sees at every output position: (N, C, oH, oW)."""
    (sh, sw), (oh, ow) = stride, out_hw
    return x[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw]


# ----- ReLU -----------------------------------------------------------------------------------------
def relu(x):
    """max(x, 0), on every core."""
    y = np.empty(x.shape, dtype=np.result_type(x.dtype, 0))    # bool -> int, as np.maximum(x, 0)
    over_batch(x, lambda part: np.maximum(x[part], 0, out=y[part]))
    return y


def relu_backward(gy, y):
    """gy where y > 0, else 0, on every core."""
    gx = np.empty(gy.shape, dtype=gy.dtype)
    over_batch(gy, lambda part: np.multiply(gy[part], y[part] > 0, out=gx[part]))
    return gx


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
    cols = np.empty((x.shape[1], kh, kw, *windows.shape[:1], *windows.shape[2:4]), dtype=x.dtype)
    over_batch(x, lambda part: np.copyto(cols[:, :, :, part], windows[part].transpose(1, 4, 5, 0, 2, 3)))
    return cols


def col2im(cols, x_shape, kernel, stride, padding):
    """The adjoint of im2col: add every column entry back onto the pixel it came from -> (N, C, H, W).

    A pixel covered by several windows (overlap) receives the sum; one strided add per kernel offset.
    """
    n, c, h, w = x_shape
    (kh, kw), (ph, pw) = kernel, padding
    out_hw = cols.shape[-2:]
    dx = np.empty((n, c, h + 2 * ph, w + 2 * pw), dtype=cols.dtype)

    def work(part):
        dx[part] = 0
        for i in range(kh):
            for j in range(kw):
                _offset(dx[part], i, j, stride, out_hw)[...] += cols[:, i, j, part].transpose(1, 0, 2, 3)
    over_batch(dx, work)
    return dx[:, :, ph:ph + h, pw:pw + w]


def conv_output(x, w_g, kernel, stride, padding, out_hw, bias=None):
    """The convolution's output (N, O, oH, oW), plus ``bias`` (O,) when given, when nothing keeps its columns
    (evaluation; training where ``keeps_columns`` says no).

    y = W @ im2col(x) for a block of images at a time on each core (about 6 MiB of columns, at least one
    image: ``IMAGE_BLOCK_BYTES``), with W = w_g (g, O/g, K): the block's columns go straight from im2col
    to the matmul through the caches.  Unfolding the whole batch first
    writes all the columns to memory and reads them back (AlexNet's conv1: 140 MB).

    Output rows shorter than 8 (``unfolds_channels_last``): the whole batch at once, channels-last (its columns
    bounded by ``Conv2d.max_column_bytes``, as when training keeps them).
    """
    if unfolds_channels_last(out_hw):
        return conv_output_channels_last(x, w_g, kernel, stride, padding, out_hw, bias)[0]
    groups, per_group, k = w_g.shape
    y = np.empty((len(x), groups * per_group, *out_hw), dtype=np.result_type(x.dtype, w_g.dtype))

    def work(images):
        cols = im2col(x[images], kernel, stride, padding).reshape(groups, k, -1)      # (g, K, b·oH·oW)
        y[images] = (w_g @ cols).reshape(groups * per_group, -1, *out_hw).transpose(1, 0, 2, 3)
        if bias is not None:
            y[images] += bias.reshape(-1, 1, 1)     # while the block is in cache (a pass over y costs ~7 ms a step)
    over_images(x, work, bytes_per_image=groups * k * out_hw[0] * out_hw[1] * y.itemsize)
    return y


def unfolds_channels_last(out_hw) -> bool:
    """Should a convolution unfold x channels-last (``conv_output_channels_last``) rather than im2col's way?
    Yes when the output's rows are short: im2col copies runs of oW values, and below about 8 NumPy's overhead
    per run costs more than the copying.  For training (the columns kept for ∂W), measured forward + ∂W at
    batch 64 on 2 cores, one tower of the CPU preset: conv2 (oW 7) 3.45 -> 2.99 ms, conv3-5 (oW 3) 2.22 ->
    1.72, 1.83 -> 1.43, 1.60 -> 1.22; but conv1 (oW 15, 3 channels to turn around) 8.0 -> 8.6, and the full
    network's conv3-5 (oW 13, batch 32) 3-4 % slower: with the columns as (N·oH·oW, K), OpenBLAS runs ∂W's
    matmul slower than with im2col's (K, N·oH·oW).  For evaluation (``conv_output``), the CPU preset's whole
    forward pass: 19.0 -> 15.8 ms."""
    return out_hw[1] < 8


def conv_output_channels_last(x, w_g, kernel, stride, padding, out_hw, bias=None):
    """The convolution's output (N, O, oH, oW), plus ``bias``, and the columns it multiplied, laid out
    channels-last (``unfolds_channels_last``), one receptive field per row, in (i, j, c) order:

        cols[γ, (n, y, x), (i, j, c)] = x_padded[n, γ·C/g + c, y·sh + i, x·sw + j]       (g, N·oH·oW, kh·kw·C/g)
        y[n, γ·O/g + o, y, x]         = Σ cols[γ, (n, y, x), :] · w[γ·O/g + o, :, i, j] in the same order

    The same products as W @ im2col(x).  Unfolded from x turned channels-last (N, H, W, C), each row i of a
    receptive field is kw·C contiguous values of x (with one group), copied as one run.
    """
    groups, per_group, _ = w_g.shape
    kh, kw = kernel
    n, channels = x.shape[:2]
    cols = _columns_channels_last(x, kernel, stride, padding, groups)                  # (g, M, K), M = N·oH·oW
    w_last = (w_g.reshape(groups, per_group, channels // groups, kh, kw).transpose(0, 1, 3, 4, 2)
              .reshape(groups, per_group, -1))                                          # (g, O/g, K), (i, j, c)
    y_last = cols @ w_last.transpose(0, 2, 1)                                           # (g, M, O/g)
    if bias is not None:
        y_last += bias.reshape(groups, 1, per_group)
    y_last = y_last.reshape(groups, n, out_hw[0] * out_hw[1], per_group).transpose(1, 0, 2, 3)    # (N, g, L, O/g)
    return transposed_copy(y_last, (0, 1, 3, 2)).reshape(n, groups * per_group, *out_hw), cols


def conv_weight_grad_channels_last(cols, gy, groups, kernel):
    """∂L/∂W (g, O/g, C/g·kh·kw) from the columns ``conv_output_channels_last`` kept: ∂Wᵀ = colsᵀ @ ∂Y, with ∂Y
    channels-last (g, N·oH·oW, O/g) like the columns; then (i, j, c) back to the weights' (c, i, j)."""
    n, o = gy.shape[:2]
    per_group, (kh, kw) = o // groups, kernel
    gy_last = transposed_copy(gy.reshape(n, groups, per_group, gy.shape[2] * gy.shape[3]), (1, 0, 3, 2))
    gw_last = cols.transpose(0, 2, 1) @ gy_last.reshape(cols.shape[:2] + (per_group,))  # (g, K, O/g)
    return (gw_last.reshape(groups, kh, kw, -1, per_group).transpose(0, 4, 3, 1, 2)
            .reshape(groups, per_group, -1))


def _columns_channels_last(x, kernel, stride, padding, groups):
    """x (N, C, H, W) unfolded into (g, N·oH·oW, kh·kw·C/g) as ``conv_output_channels_last`` says, on every core."""
    n, channels, h, w = x.shape
    (sh, sw), (ph, pw) = stride, padding
    padded = (np.zeros if ph or pw else np.empty)((n, h + 2 * ph, w + 2 * pw, channels), dtype=x.dtype)  # zero border
    over_batch(x, lambda part: np.copyto(padded[part, ph:ph + h, pw:pw + w], x[part].transpose(0, 2, 3, 1)))
    windows = sliding_window_view(padded, kernel, axis=(1, 2))[:, ::sh, ::sw]        # (N, oH, oW, C, kh, kw)
    oh, ow = windows.shape[1:3]
    windows = (windows.reshape(n, oh, ow, groups, channels // groups, *kernel)
               .transpose(3, 0, 1, 2, 5, 6, 4))                                         # (g, N, oH, oW, kh, kw, C/g)
    cols = np.empty(windows.shape, dtype=x.dtype)
    # (parts by x's size, not the columns': splitting conv2's or conv3's columns at the CPU preset, 0.9 and 1.4 M
    # values, over two cores ran 324 -> 447 and 147 -> 286 µs: waking the second costs more than it saves)
    over_batch(x, lambda part: np.copyto(cols[:, part], windows[:, part]))
    return cols.reshape(groups, n * oh * ow, channels // groups * kernel[0] * kernel[1])


def conv_input_grad(gy, w_g, x_shape, kernel, stride, padding):
    """∂L/∂x (N, C, H, W) of a convolution, on a block of images at a time per core, by one of two routes:

        ∂x[n, c, Y, X] = Σ w[o, c, i, j] · ∂y[n, o, y, x]   over o, and the (y, i), (x, j) with
                                                             y·sh + i − ph = Y and x·sw + j − pw = X

    col2im(Wᵀ @ ∂y), the adjoint of forward's im2col: the matmul makes C·kh·kw ∂columns, and col2im adds each
    back onto the image, C·kh·kw·oH rows of oW values per image.  A block's ∂columns (about 6 MiB) stay in
    the caches from the matmul to col2im's adds; for the whole batch they would go to memory and back.

    A kernel row at a time (``_input_grad_by_kernel_rows``), when the stride along x is 1 and ∂y's rows are
    at least as wide as x's (AlexNet's conv2-5, padded to keep their size): the matmul does the sum over the
    kernel's columns j, and kh adds of whole rows of the image do the sum over its rows i.  It is exact for
    any stride-1-along-x convolution; the width condition is about cost: then its matmul does no more
    multiplications than col2im's, and it moves far fewer values (per image of conv2, col2im adds 875 k
    values in rows of 27; this route copies 467 k, ∂y 5 times, and adds 175 k in runs of 729).  Measured on
    2 cores, one tower at batch 32: conv2 42.5 -> 31.5 ms, conv3 43.5 -> 39, conv4 17.7 -> 15.1, conv5 12.0
    -> 10.7.
    """
    if stride[1] == 1 and x_shape[3] <= gy.shape[3]:
        return _input_grad_by_kernel_rows(gy, w_g, x_shape, kernel, stride, padding)
    groups, per_group, k = w_g.shape
    w_t = w_g.transpose(0, 2, 1)                                                       # (g, K, O/g)
    dx = np.empty(x_shape, dtype=np.result_type(gy.dtype, w_g.dtype))

    def work(images):
        block = gy[images]
        gy_g = block.transpose(1, 0, 2, 3).reshape(groups, per_group, len(block) * gy.shape[2] * gy.shape[3])
        gcols = (w_t @ gy_g).reshape(x_shape[1], *kernel, len(block), *gy.shape[2:])   # (C, kh, kw, b, oH, oW)
        dx[images] = col2im(gcols, (len(block), *x_shape[1:]), kernel, stride, padding)
    over_images(gy, work, bytes_per_image=groups * k * gy.shape[2] * gy.shape[3] * dx.itemsize)
    return dx


def _input_grad_by_kernel_rows(gy, w_g, x_shape, kernel, stride, padding):
    """``conv_input_grad`` when the stride along x is 1.  Split the sum over the kernel into its columns j,
    done by a matmul, and its rows i, done by adding whole rows of the image:

        shifted[o, j, n, y, X] = ∂y[n, o, y, X + pw − j]      (0 where that is outside ∂y; X = 0 … W − 1)
        rows[c, i, n, y, X]    = Σ_{o, j} w[o, c, i, j] · shifted[o, j, n, y, X]        (one matmul per group)
        ∂x[n, c, Y, X]         = Σ rows[c, i, n, y, X]  over the (i, y) with y·sh + i − ph = Y
                                 (rows that land outside 0 … H − 1 are the padding: dropped)

    ``shifted`` is ∂y copied kw times, each copy moved j columns; the matmul's W is w with its axes in the
    order (c, i) × (o, j).
    """
    groups, per_group = w_g.shape[:2]
    _, channels, h, width = x_shape
    (kh, kw), (sh, _), (ph, pw) = kernel, stride, padding
    oh, ow = gy.shape[2:]
    in_per_group = channels // groups
    w_rows = (w_g.reshape(groups, per_group, in_per_group, kh, kw).transpose(0, 2, 3, 1, 4)
              .reshape(groups, in_per_group * kh, per_group * kw))                    # (g, C/g·kh, O/g·kw)
    dx = np.empty(x_shape, dtype=np.result_type(gy.dtype, w_g.dtype))

    def work(images):
        block, target = gy[images], dx[images]
        shifted = np.zeros((groups * per_group, kw, len(block), oh, width), dtype=gy.dtype)
        for j in range(kw):
            move = pw - j                                        # shifted[..., X] = ∂y[..., X + move]
            first, end = max(0, -move), min(width, ow - move)
            if first < end:
                shifted[:, j, :, :, first:end] = block[:, :, :, first + move:end + move].transpose(1, 0, 2, 3)
        rows = (w_rows @ shifted.reshape(groups, per_group * kw, -1)).reshape(channels, kh, len(block), oh, width)
        target[...] = 0
        for i in range(kh):
            # the rows y with 0 ≤ y·sh + i − ph < H land on the image, from image row y_first·sh + i − ph on
            y_first = -(-max(0, ph - i) // sh)                   # (ph − i)/sh rounded up: −(−a // b)
            y_end = min(oh, (h - 1 - i + ph) // sh + 1)
            if y_first < y_end:
                start = y_first * sh + i - ph
                image_rows = slice(start, start + sh * (y_end - y_first), sh)
                target[:, :, image_rows] += rows[:, i, :, y_first:y_end].transpose(1, 0, 2, 3)
    bytes_per_image = (groups * per_group * kw * gy.itemsize + channels * kh * dx.itemsize) * oh * width
    over_images(gy, work, bytes_per_image)      # (shifted and rows of a block)
    return dx


def conv_weight_grad(x, gy, groups, kernel, stride, padding):
    """∂L/∂W (g, O/g, C/g·kh·kw) of a convolution from its input x and ∂y: Σ over the batch of ∂Y @ im2col(x)ᵀ.

    Summed over blocks of images on each core (about 6 MiB of columns, at least one image; ``sum_over_images``):
    a block's columns go from im2col to the matmul in cache.  For the large maps of AlexNet's conv1 and
    conv2 this beats keeping the whole batch's columns from forward (140 and 2 × 112 MB, written once and
    read back); see ``keeps_columns``.
    """
    o, k = gy.shape[1], x.shape[1] // groups * kernel[0] * kernel[1]

    # Each block gives ∂Wᵀ = cols @ ∂Yᵀ (g, K, O/g): the same products as ∂Y @ colsᵀ, in the layout that
    # OpenBLAS runs 10-20 % faster on conv1's and conv2's per-image shapes (measured: 110 -> 130 GFLOP/s).
    def product(images):
        gy_g = gy[images].transpose(1, 0, 2, 3).reshape(groups, o // groups, -1)         # (g, O/g, b·oH·oW)
        cols = im2col(x[images], kernel, stride, padding).reshape(groups, k, -1)        # (g, K, b·oH·oW)
        return cols @ gy_g.transpose(0, 2, 1)
    gw_t = sum_over_images(x, product, bytes_per_image=groups * k * gy.shape[2] * gy.shape[3] * x.itemsize)
    if gw_t is None:
        return np.zeros((groups, o // groups, k), np.result_type(x.dtype, gy.dtype))
    return gw_t.transpose(0, 2, 1)


def keeps_columns(out_hw) -> bool:
    """Should a convolution's forward keep its columns for ∂W (instead of x, to unfold again per block in
    ``conv_weight_grad``)?  Yes for small maps: their blocks hold many images, one batched matmul over
    columns already in memory is faster.  Measured on AlexNet at batch 32 on 2 cores, forward + ∂W: conv1
    (55 × 55) 114 ms keeping the columns, 85 ms unfolding again; conv2 (27 × 27) 172 and 155 ms; but
    conv3 (13 × 13) 80 and 100 ms.  Again with blocks of 6 MiB: conv2 76 and 69 ms, conv3 78 and 82, conv4
    34 and 36, conv5 26 and 26."""
    return out_hw[0] * out_hw[1] < 400


def transposed_copy(x, axes):
    """``x.transpose(axes)`` as a new C-contiguous array (conv's switch between (N, O, ·) and (O, N, ·))."""
    out = np.empty([x.shape[a] for a in axes], dtype=x.dtype)
    batch_axis = axes.index(0)    # the source's batch axis, where it lands in the result
    view = x.transpose(axes)

    def work(part):
        index = (slice(None),) * batch_axis + (part,)
        out[index] = view[index]
    over_batch(x, work)
    return out


def concatenate(arrays, axis):
    """``np.concatenate(arrays, axis)``, on every core when the arrays share a batch axis in front of ``axis``
    (AlexNet's towers joined along channels: 37 MB at conv1, 4.9 -> 1.6 ms on 2 cores)."""
    axis = axis + arrays[0].ndim if axis < 0 else axis
    if axis == 0 or len({len(a) for a in arrays}) > 1:    # no shared batch axis (NumPy says what is wrong)
        return np.concatenate(arrays, axis=axis)
    shape = list(arrays[0].shape)
    shape[axis] = sum(a.shape[axis] for a in arrays)
    out = np.empty(shape, dtype=np.result_type(*arrays))
    over_batch(out, lambda part: np.concatenate([a[part] for a in arrays], axis=axis, out=out[part]))
    return out


# ----- max-pool -------------------------------------------------------------------------------------
# Max-pool's blocks of images, turned channels-last: about the size of a core's L2 cache.  Measured on
# AlexNet's pool1, pool2 and pool5 on 2 cores: 1 MiB 10.6, 6.0, 1.4 ms; 2 MiB 7.4, 4.6, 1.1; 3 MiB 7.8, 5.2, 1.1.
POOL_BLOCK_BYTES = 2 << 20


def max_pool_forward(x, kernel, stride, padding, out_hw, need_argmax=True):
    """Max over each window -> (y, argmax), both (N, C, oH, oW); argmax is None unless ``need_argmax``.

    argmax holds the window-local offset i·kw + j of the maximum; ties go to the first in row-major
    order.  A NaN in a window makes its output NaN, as in PyTorch: a diverging network must not look
    healthy; the arg-max of such a window is its first NaN.

    Each core takes blocks of images (``POOL_BLOCK_BYTES``) and turns them channels-last, (b, H, W, C).
    The view of one window offset then has rows of C contiguous values, where in (N, C, H, W) its rows
    are oW values ``stride`` apart, which NumPy's loops take one short strided row at a time; and the
    block's 4·kh·kw passes stay in the cache.  Measured on AlexNet's pool1, pool2 and pool5 (one tower,
    2 cores), both transposes included: 9.2 -> 7.4, 6.0 -> 4.6 and 1.6 -> 1.1 ms.
    """
    (kh, kw), (sh, sw), (oh, ow) = kernel, stride, out_hw
    x = _pad_hw(x, padding, value=-np.inf)
    y = np.empty((*x.shape[:2], *out_hw), dtype=x.dtype)
    argmax = np.empty(y.shape, dtype=np.min_scalar_type(kh * kw)) if need_argmax else None

    def work(images):
        xs = transposed_copy(x[images], (0, 2, 3, 1))                                    # (b, H, W, C)
        windows = [xs[:, i:i + sh * oh:sh, j:j + sw * ow:sw] for i in range(kh) for j in range(kw)]
        ys = windows[0].copy()                                                           # (b, oH, oW, C)
        for values in windows[1:]:
            np.maximum(ys, values, out=ys)      # propagates NaN
        y[images] = ys.transpose(0, 3, 1, 2)
        if need_argmax:
            argmax[images] = _first_argmax(windows, ys).transpose(0, 3, 1, 2)
    over_blocks(x, work, block_bytes=POOL_BLOCK_BYTES)
    return y, argmax


def _first_argmax(windows, y):
    """The index k of the first view in ``windows`` (the window offsets, row-major) that equals the maximum y.

    Branch-free: each offset that holds the maximum bids len(windows) − k, so the highest bid is the
    first such offset; three fast whole-array steps per offset (a masked copy is far slower).
    """
    n, dtype = len(windows), np.min_scalar_type(len(windows))
    bid, best_bid, is_max = np.empty(y.shape, dtype), np.zeros(y.shape, dtype), np.empty(y.shape, dtype=bool)
    nan = np.isnan(y)
    has_nan = bool(nan.any())   # the NaN test costs a pass per offset: only when a window holds one
    for k, values in enumerate(windows):
        np.equal(values, y, out=is_max)
        if has_nan:
            is_max |= nan & np.isnan(values)   # a NaN window: its arg-max is its first NaN
        np.multiply(is_max, n - k, out=bid, dtype=bid.dtype)
        np.maximum(best_bid, bid, out=best_bid)
    return np.subtract(n, best_bid, out=best_bid)


def max_pool_backward(gy, argmax, x_shape, kernel, stride, padding):
    """Send each output gradient to the input pixel its window's maximum came from -> (N, C, H, W).

    One scatter-add: each ∂y lands at its window's start plus the arg-max's offset, in the flattened
    (padded) image plane; ``np.add.at`` sums where overlapping windows share a maximum.

    ``np.add.at`` holds the GIL, so the cores' parts take turns there; the targets are built before it,
    in parallel, as int32 where they fit (half the memory traffic of int64) and with ``np.take`` (a
    fancy index ``lut[argmax]`` runs slower).  Measured on pool1 (one tower, one core): targets 4.0 -> 1.6 ms,
    the scatter-add 1.8 ms.
    """
    n, c, h, w = x_shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    plane_h, plane_w = h + 2 * ph, w + 2 * pw
    oh, ow = gy.shape[-2:]
    dx = np.empty((n, c, plane_h, plane_w), dtype=gy.dtype)
    index = np.int32 if dx.size < 2**31 else np.intp
    window_start = ((np.arange(oh) * sh * plane_w)[:, None] + np.arange(ow) * sw).astype(index)   # (oH, oW)
    offset_in_plane = np.array([i * plane_w + j for i in range(kh) for j in range(kw)], dtype=index)  # by arg-max

    def work(part):
        planes = dx[part].reshape(-1, plane_h * plane_w)     # one row per (image, channel) of this part
        planes[...] = 0
        target = np.take(offset_in_plane, argmax[part].reshape(len(planes), oh, ow))
        target += window_start
        target += (np.arange(len(planes), dtype=index) * planes.shape[1])[:, None, None]
        scatter_add(planes.reshape(-1), target.reshape(-1), gy[part].reshape(-1))
    over_batch(dx, work)
    return dx[:, :, ph:ph + h, pw:pw + w]


# ----- local response normalization -----------------------------------------------------------------
def channel_window_sum(x, before, after, out=None):
    """out[:, c] = Σ_{j = c − before}^{c + after} x[:, j], leaving out channels beyond 0..C−1.  x: (N, C, H, W).

    One shifted add per window position (before + after + 1 of them); into ``out`` when given.
    """
    channels = x.shape[1]
    if out is None:
        out = x.copy()
    else:
        out[...] = x
    for shift in range(1, min(before, channels - 1) + 1):      # channel c − shift, where there is one
        out[:, shift:] += x[:, :channels - shift]
    for shift in range(1, min(after, channels - 1) + 1):       # channel c + shift
        out[:, :channels - shift] += x[:, shift:]
    return out


def lrn_forward(a, size, alpha, beta, k):
    """b = a · s^(−β) with s = k + α·Σ_window a² (see functional/lrn.py) -> (b, s)."""
    dtype = np.result_type(a.dtype, alpha)     # an integer input gives float64, as a·α would
    b, s = np.empty(a.shape, dtype), np.empty(a.shape, dtype)

    def work(part):
        channel_window_sum(np.square(a[part]), size // 2, (size - 1) // 2, out=s[part])
        s[part] *= alpha
        s[part] += k
        np.power(s[part], -beta, out=b[part])
        b[part] *= a[part]
    over_blocks(a, work, block_bytes=1 << 20)    # a few images: their temporaries stay in cache
    return b, s


def lrn_backward(a, s, g, size, alpha, beta):
    """∂L/∂a_i = g_i·s_i^(−β) − 2αβ·a_i·Σ_{j: i ∈ window(j)} g_j·b_j/s_j, the window turned around for the sum."""
    ga = np.empty_like(g)

    def work(part):
        scale = np.power(s[part], -beta)
        g_scale = g[part] * scale                                  # g·s^(−β)
        g_b_over_s = g_scale * a[part]
        g_b_over_s /= s[part]                                      # g·b/s
        summed = channel_window_sum(g_b_over_s, (size - 1) // 2, size // 2)
        summed *= a[part]
        summed *= 2 * alpha * beta
        np.subtract(g_scale, summed, out=ga[part])
    over_blocks(g, work, block_bytes=1 << 20)
    return ga
