"""The CPU primitives split the batch over threads (backend/cpu.py): the split must not change a single bit.

Gradchecks use arrays too small to be split, so these tests force the threaded path on purpose, with
parts of unequal size (a batch of 5 over 1, 2 and 3 "cores").
"""
import subprocess
import sys
import threading

import numpy as np
import pytest

from minigrad.backend import cpu


@pytest.fixture(params=[2, 3], ids=lambda cores: f"{cores}-cores")
def cores(request, monkeypatch):
    """Pretend to have this many cores and split even small arrays; the workers are made afresh."""
    monkeypatch.setattr(cpu, "CORES", request.param)
    monkeypatch.setattr(cpu, "SMALL", 0)
    cpu._workers.cache_clear()
    yield request.param
    cpu._workers.cache_clear()


def single_threaded(fn, *args, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(cpu, "CORES", 1)
        return fn(*args)


def test_over_batch_covers_every_item_once_with_the_parts_running_at_once(cores):
    seen = np.zeros(7, dtype=int)
    all_parts_running = threading.Barrier(cores, timeout=10)   # breaks unless every part is running at the same time

    def work(part):
        seen[part] += 1
        all_parts_running.wait()
    cpu.over_batch(np.zeros((7, 3)), work)
    np.testing.assert_array_equal(seen, 1)


def test_an_error_in_a_worker_reaches_the_caller(cores):
    def work(part):
        if part.start > 0:
            raise ValueError("from a worker")
    with pytest.raises(ValueError, match="from a worker"):
        cpu.over_batch(np.zeros(5), work)


@pytest.mark.parametrize("kernel, stride, padding", [((3, 3), (2, 2), (1, 1)), ((5, 5), (1, 1), (2, 2)), ((3, 2), (1, 2), (0, 1))])
def test_split_primitives_equal_one_thread(cores, monkeypatch, kernel, stride, padding):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 4, 9, 8)).astype(np.float32)
    out_hw = tuple((s + 2 * p - k) // st + 1 for s, k, st, p in zip(x.shape[2:], kernel, stride, padding))
    cols = cpu.im2col(x, kernel, stride, padding)
    np.testing.assert_array_equal(cols, single_threaded(cpu.im2col, x, kernel, stride, padding, monkeypatch=monkeypatch))
    np.testing.assert_array_equal(cpu.col2im(cols, x.shape, kernel, stride, padding),
                                  single_threaded(cpu.col2im, cols, x.shape, kernel, stride, padding, monkeypatch=monkeypatch))
    y, argmax = cpu.max_pool_forward(x, kernel, stride, padding, out_hw)
    y1, argmax1 = single_threaded(cpu.max_pool_forward, x, kernel, stride, padding, out_hw, monkeypatch=monkeypatch)
    np.testing.assert_array_equal(y, y1)
    np.testing.assert_array_equal(argmax, argmax1)
    np.testing.assert_array_equal(cpu.max_pool_backward(y, argmax, x.shape, kernel, stride, padding),
                                  single_threaded(cpu.max_pool_backward, y, argmax, x.shape, kernel, stride, padding,
                                                  monkeypatch=monkeypatch))
    b, s = cpu.lrn_forward(x, 5, 1e-2, 0.75, 2.0)
    b1, s1 = single_threaded(cpu.lrn_forward, x, 5, 1e-2, 0.75, 2.0, monkeypatch=monkeypatch)
    np.testing.assert_array_equal(b, b1)
    np.testing.assert_array_equal(s, s1)
    np.testing.assert_array_equal(cpu.lrn_backward(x, s, y.mean() + x, 5, 1e-2, 0.75),
                                  single_threaded(cpu.lrn_backward, x, s, y.mean() + x, 5, 1e-2, 0.75, monkeypatch=monkeypatch))
    np.testing.assert_array_equal(cpu.transposed_copy(x, (1, 0, 3, 2)), x.transpose(1, 0, 3, 2))
    np.testing.assert_array_equal(cpu.relu(x), np.maximum(x, 0))
    np.testing.assert_array_equal(cpu.relu_backward(y.mean() + x, x), np.where(x > 0, y.mean() + x, 0))
    other = x[:, :3].astype(np.float64)                     # joined with another dtype: NumPy's promotion
    for axis in range(-4, 4):
        pieces = [x, other if axis in (1, -3) else x]
        np.testing.assert_array_equal(cpu.concatenate(pieces, axis), np.concatenate(pieces, axis=axis))
    with pytest.raises(ValueError):          # batches that differ: NumPy's error, not a silent cut
        cpu.concatenate([x, x[:3]], 1)


@pytest.mark.parametrize("kernel, stride, padding, groups, out_channels", [
    ((3, 3), (2, 2), (1, 1), 1, 6),       # stride 2 along x: ∂x by col2im
    ((5, 5), (1, 1), (2, 2), 2, 6),       # stride 1, ∂y as wide as x: ∂x a kernel row at a time
    ((3, 3), (2, 1), (1, 1), 1, 4),       # stride 2 down, 1 along x: kernel rows, every other image row
    ((3, 2), (1, 1), (1, 0), 2, 4),       # stride 1, ∂y narrower than x (no padding along x): col2im
    ((1, 1), (1, 1), (1, 1), 1, 2),       # stride 1, ∂y wider than x (padding ≥ kernel): kernel rows
    ((1, 19), (1, 1), (0, 9), 1, 2)])     # kernel rows, where some of ∂y's shifted copies miss x entirely
def test_per_core_convolution_equals_pytorch(cores, monkeypatch, kernel, stride, padding, groups, out_channels):
    """conv_output, conv_input_grad and conv_weight_grad (blocks of images per core), and the channels-last
    conv_output_channels_last and conv_weight_grad_channels_last, against PyTorch's convolution and its two
    gradients, however the batch is split (float64)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 4, 9, 8))
    w_g = rng.standard_normal((groups, out_channels // groups, 4 // groups * kernel[0] * kernel[1]))
    w = w_g.reshape(out_channels, 4 // groups, *kernel)
    out_hw = tuple((s + 2 * p - k) // st + 1 for s, k, st, p in zip(x.shape[2:], kernel, stride, padding))
    gy = rng.standard_normal((5, out_channels, *out_hw))
    x_t, w_t = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    y_t = torch.nn.functional.conv2d(x_t, w_t, stride=stride, padding=padding, groups=groups)
    y_t.backward(torch.tensor(gy))
    y, gx, gw = y_t.detach().numpy(), x_t.grad.numpy(), w_t.grad.numpy().reshape(w_g.shape)
    bias = np.arange(out_channels, dtype=np.float64)
    with monkeypatch.context() as m:
        m.setattr(cpu, "unfolds_channels_last", lambda out_hw: False)     # conv_output by blocks, whatever the width
        for block_bytes in (1, 10**9):                      # one image per block, or a whole part per block
            m.setattr(cpu, "IMAGE_BLOCK_BYTES", block_bytes)
            np.testing.assert_allclose(cpu.conv_output(x, w_g, kernel, stride, padding, out_hw), y, rtol=1e-10, atol=1e-10)
            np.testing.assert_allclose(cpu.conv_output(x, w_g, kernel, stride, padding, out_hw, bias),
                                       y + bias.reshape(-1, 1, 1), rtol=1e-10, atol=1e-10)
            np.testing.assert_allclose(cpu.conv_input_grad(gy, w_g, x.shape, kernel, stride, padding), gx,
                                       rtol=1e-10, atol=1e-10)
            np.testing.assert_allclose(cpu.conv_weight_grad(x, gy, groups, kernel, stride, padding), gw,
                                       rtol=1e-10, atol=1e-10)
    # unfolded channels-last (the CPU's way for output rows shorter than 8), on every core: conv_output, and the
    # columns that training keeps for ∂W
    monkeypatch.setattr(cpu, "unfolds_channels_last", lambda out_hw: True)
    np.testing.assert_allclose(cpu.conv_output(x, w_g, kernel, stride, padding, out_hw, bias), y + bias.reshape(-1, 1, 1),
                               rtol=1e-10, atol=1e-10)
    y_last, cols = cpu.conv_output_channels_last(x, w_g, kernel, stride, padding, out_hw, bias)
    assert cols.shape == (groups, 5 * out_hw[0] * out_hw[1], w_g.shape[2])
    np.testing.assert_allclose(y_last, y + bias.reshape(-1, 1, 1), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(cpu.conv_weight_grad_channels_last(cols, gy, groups, kernel), gw, rtol=1e-10, atol=1e-10)


def test_input_gradient_with_stride_1_along_x_goes_a_kernel_row_at_a_time(monkeypatch):
    """With stride 1 along x and ∂y at least as wide as x, conv_input_grad never calls col2im (and gives what
    col2im gives); with stride 2 along x, or ∂y narrower than x, it folds the ∂columns back with col2im."""
    rng = np.random.default_rng(2)
    x_shape, kernel, padding = (2, 6, 7, 5), (3, 2), (2, 1)
    w_g = rng.standard_normal((3, 2, 2 * 3 * 2))                          # groups 3, 6 -> 6 channels
    gy = rng.standard_normal((2, 6, 9, 6))
    by_col2im = cpu.col2im((w_g.transpose(0, 2, 1) @ gy.transpose(1, 0, 2, 3).reshape(3, 2, -1)).reshape(6, 3, 2, 2, 9, 6),
                           x_shape, kernel, (1, 1), padding)
    monkeypatch.setattr(cpu, "col2im", lambda *args: pytest.fail("col2im called"))
    np.testing.assert_allclose(cpu.conv_input_grad(gy, w_g, x_shape, kernel, (1, 1), padding), by_col2im, rtol=1e-12)
    cpu.conv_input_grad(gy[:, :, ::2], w_g, x_shape, kernel, (2, 1), padding)            # stride 2 down: kernel rows
    cpu.conv_input_grad(np.zeros((2, 6, 13, 8)), w_g, x_shape, kernel, (1, 1), (4, 2))   # padding ≥ kernel: too
    with pytest.raises(pytest.fail.Exception, match="col2im called"):
        cpu.conv_input_grad(gy[:, :, :, :3], w_g, x_shape, kernel, (1, 2), padding)         # stride 2 along x
    with pytest.raises(pytest.fail.Exception, match="col2im called"):                       # no padding: 4 < 5 wide
        cpu.conv_input_grad(gy[:, :, :, :4], w_g, x_shape, kernel, (1, 1), (2, 0))


@pytest.mark.parametrize("cores", [3, 4], indirect=True)
def test_the_weight_gradient_does_not_depend_on_which_thread_ran_which_part(cores, monkeypatch):
    """conv_weight_grad adds up the blocks of each part, then the parts, always in the same order: a float32
    sum in another order rounds differently, and the same run must give the same numbers every time."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((7, 3, 6, 6)).astype(np.float32)
    gy = rng.standard_normal((7, 4, 4, 4)).astype(np.float32)
    monkeypatch.setattr(cpu, "IMAGE_BLOCK_BYTES", 1)                     # one image per block: several a part
    results = {cpu.conv_weight_grad(x, gy, 1, (3, 3), (1, 1), (0, 0)).tobytes() for _ in range(40)}
    assert len(results) == 1


def test_a_primitive_called_inside_a_part_runs_in_that_part(cores):
    """conv_output calls im2col from its parts: im2col must not hand work to the (busy) workers again."""
    inner_parts, done = [], threading.Event()

    def outer(part):
        cpu.over_batch(np.zeros((6, 3)), inner_parts.append)
    runner = threading.Thread(target=lambda: (cpu.over_batch(np.zeros((6, 3)), outer), done.set()), daemon=True)
    runner.start()
    assert done.wait(timeout=20), "a nested over_batch deadlocked"
    assert inner_parts == [slice(0, 6)] * cores          # each outer part ran the inner batch as one part


def test_blas_runs_on_one_thread_while_the_cores_run_their_own_matmuls(cores):
    from threadpoolctl import threadpool_info, threadpool_limits

    def blas_threads():
        return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    def fail(part):
        raise ValueError("from a part")
    with threadpool_limits(limits=2, user_api="blas"):                 # (a 1-core machine: 2 all the same)
        before, inside = blas_threads(), []
        assert before and set(before) == {2}, "threadpoolctl finds NumPy's BLAS"
        cpu.over_images(np.zeros((4, 3)), lambda part: inside.append(blas_threads()), bytes_per_image=24)
        assert len(inside) == cores and all(threads == [1] * len(before) for threads in inside)
        assert blas_threads() == before                                  # restored after
        with pytest.raises(ValueError, match="from a part"):
            cpu.over_images(np.zeros((4, 3)), fail, bytes_per_image=24)
        assert blas_threads() == before                                  # and after an error
        inside.clear()
        cpu.over_images(np.zeros((1, 3)), lambda part: inside.append(blas_threads()), bytes_per_image=24)
        assert inside == [before]                                        # one image, one part: BLAS keeps its threads


def test_over_blocks_visits_every_row_once_in_small_blocks(cores):
    w = np.zeros((50, 3))
    blocks = []

    def add_one(rows):
        w[rows] += 1
        blocks.append(rows.stop - rows.start)
    cpu.over_blocks(w, add_one, block_bytes=4 * w[0].nbytes)
    np.testing.assert_array_equal(w, 1)
    assert max(blocks) == 4 and sum(blocks) == 50


def test_in_chunks_hands_out_matching_rows_of_every_array(cores, monkeypatch):
    rng = np.random.default_rng(0)
    shapes = [(70_000, 3), (5,), (), (0, 4), (300, 2, 2)]       # several 512 KiB blocks, small ones, a scalar, none
    sources = [rng.standard_normal(shape) for shape in shapes]
    targets = [np.zeros(shape) for shape in shapes]
    hand_outs = []

    def run_parts(work, parts):
        hand_outs.append(len(parts))
        run_parts.original(work, parts)
    run_parts.original = cpu._run_parts
    monkeypatch.setattr(cpu, "_run_parts", run_parts)

    def copy(target_rows, source_rows):
        target_rows[...] = source_rows
    cpu.in_chunks(copy, list(zip(targets, sources)))
    for target, source in zip(targets, sources):
        np.testing.assert_array_equal(target, source)
    assert hand_outs == [cores]     # one hand-out for all the groups, a run of blocks for every core


def test_openblas_told_to_stop_spinning_even_when_numpy_came_first():
    """OpenBLAS reads OPENBLAS_THREAD_TIMEOUT when NumPy loads it; minigrad imported later still sets it."""
    code = """
import ctypes, sys
import numpy as np
np.ones((64, 64)) @ np.ones((64, 64))      # OpenBLAS's threads are up before minigrad comes
import minigrad
paths = {line.split()[-1] for line in open("/proc/self/maps") if "openblas" in line.rsplit("/", 1)[-1].lower()}
libraries = [ctypes.CDLL(p) for p in paths]
print([lib.openblas_thread_timeout() for lib in libraries if hasattr(lib, "openblas_thread_timeout")])
"""
    env = {k: v for k, v in __import__("os").environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    timeouts = eval(result.stdout)
    if not timeouts:
        pytest.skip("NumPy's BLAS here is not an OpenBLAS that reports its thread timeout")
    assert timeouts == [4] * len(timeouts)


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_a_forked_child_gets_its_own_workers():
    """The parent's worker threads do not exist in a forked child; work handed to them would never run."""
    code = """
import os, numpy as np
from minigrad.backend import cpu
cpu.SMALL, cpu.CORES = 0, 2
cpu.over_batch(np.zeros(4), lambda part: None)      # the parent's workers are up
pid = os.fork()
if pid == 0:
    import signal
    signal.alarm(10)                                # work left to the parent's (absent) threads would hang
    seen = np.zeros(4)
    def work(part):
        seen[part] += 1
    cpu.over_batch(seen, work)
    os._exit(0 if (seen == 1).all() else 1)
print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert result.stdout.strip() == "0", result.stderr


@pytest.mark.parametrize("keeps_columns", [True, False])
def test_empty_batches_odd_dtypes_and_empty_parameters_still_work(cores, monkeypatch, keeps_columns):
    """Found in review: the threaded code first failed on each of these (the old code handled them)."""
    import minigrad as mg
    import minigrad.functional as F
    monkeypatch.setattr(cpu, "keeps_columns", lambda out_hw: keeps_columns)   # both routes to ∂W
    empty = mg.tensor(np.ones((0, 2, 4, 4), np.float32), requires_grad=True)
    w = mg.tensor(np.ones((3, 2, 3, 3), np.float32), requires_grad=True)
    y = F.conv2d(empty, w, padding=1)
    y.sum().backward()
    assert y.shape == (0, 3, 4, 4) and empty.grad.shape == (0, 2, 4, 4)
    np.testing.assert_array_equal(w.grad.numpy(), np.zeros((3, 2, 3, 3)))            # no images: ∂W = 0
    z = F.local_response_norm(empty)
    z.sum().backward()
    assert z.shape == (0, 2, 4, 4)
    no_rows = mg.tensor(np.zeros((0, 5), np.float32), requires_grad=True)
    no_rows.grad = mg.tensor(np.zeros((0, 5), np.float32))
    mg.optim.SGD([no_rows], lr=0.1).step()
    relu_of_bools = F.relu(mg.tensor(np.array([True, False]))).numpy()
    np.testing.assert_array_equal(relu_of_bools, [1, 0])
    assert relu_of_bools.dtype == np.maximum(np.array([True]), 0).dtype
    lrn_of_ints = F.local_response_norm(mg.tensor(np.ones((1, 3, 2, 2), np.int64))).numpy()
    assert lrn_of_ints.dtype == np.float64
    np.testing.assert_allclose(lrn_of_ints[0, 0, 0, 0], (2 + 1e-4 * 3) ** -0.75)   # channel 0 sees channels 0..2
