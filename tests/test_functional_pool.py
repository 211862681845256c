"""max_pool2d: overlapping and non-overlapping windows on distinct values, PyTorch, AlexNet's sizes, ties."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg
import minigrad.functional as F
from support import DEVICES, array, check, check_against_torch, seeds


@st.composite
def pool_geometry(draw):
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))     # < k overlaps, = k tiles, > k skips
    padding = (draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2)))
    h = draw(st.integers(max(1, k[0] - 2 * padding[0]), 9))
    w = draw(st.integers(max(1, k[1] - 2 * padding[1]), 9))
    return dict(x=(draw(st.integers(1, 2)), draw(st.integers(1, 3)), h, w), kernel=k, stride=stride, padding=padding)


@pytest.mark.parametrize("device", DEVICES)
@given(geometry=pool_geometry(), seed=seeds)
def test_max_pool2d_gradcheck_and_torch(device, geometry, seed):
    g = geometry
    x = array(seed, g["x"], "distinct")   # distinct values at least 4/size apart: no tie decides a gradient

    def torch_pool(t):
        import torch
        return torch.nn.functional.max_pool2d(t, g["kernel"], g["stride"], g["padding"])
    pool = lambda t: F.max_pool2d(t, g["kernel"], g["stride"], g["padding"])  # noqa: E731
    check(pool, torch_pool, [x], device)


@pytest.mark.parametrize("device", DEVICES)
def test_alexnet_pools_55_27_13_6(device):
    x = mg.tensor(array(0, (2, 96, 55, 55), "distinct").astype(np.float32), device=device)
    sizes = []
    for _ in range(3):
        x = F.max_pool2d(x, 3, 2)
        sizes.append(x.shape[-1])
    assert sizes == [27, 13, 6]

    def torch_pool(t):
        import torch
        return torch.nn.functional.max_pool2d(t, 3, 2)
    check_against_torch(lambda t: F.max_pool2d(t, 3, 2), torch_pool,
                        [array(1, (2, 96, 55, 55), "distinct").astype(np.float32)], device, rtol=1e-6, atol=1e-7)


def test_ties_go_to_the_first_pixel_in_row_major_order():
    x = mg.tensor(np.array([[[[5.0, 5.0], [5.0, 1.0]]]]), requires_grad=True)
    F.max_pool2d(x, 2).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy()[0, 0], [[1.0, 0.0], [0.0, 0.0]])


def test_overlapping_windows_add_up_at_a_shared_maximum():
    # The 9 in the centre is the maximum of all four overlapping 3x3 windows (stride 2) that contain it.
    x = np.zeros((1, 1, 5, 5))
    x[0, 0, 2, 2] = 9.0
    t = mg.tensor(x, requires_grad=True)
    y = F.max_pool2d(t, 3, 2)
    y.sum().backward()
    assert y.shape == (1, 1, 2, 2) and t.grad.numpy()[0, 0, 2, 2] == 4.0


def test_max_pool2d_bad_input_messages():
    with pytest.raises(ValueError, match=r"max_pool2d: expected input of shape \(N, C, H, W\), got \(3, 5, 5\)"):
        F.max_pool2d(mg.zeros(3, 5, 5), 3)
    with pytest.raises(ValueError, match=r"max_pool2d: padding \(2, 2\) must be between 0 and half the kernel \(3, 3\)"):
        F.max_pool2d(mg.zeros(1, 1, 5, 5), 3, 2, 2)
    with pytest.raises(ValueError, match="max_pool2d: kernel 3 does not fit input width 2 with padding 0"):
        F.max_pool2d(mg.zeros(1, 1, 5, 2), 3)


def test_a_nan_wins_its_window_as_in_pytorch():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    x[0, 0, 1, 1] = np.nan
    y = F.max_pool2d(mg.tensor(x), 2).numpy()[0, 0]
    assert np.isnan(y[0, 0]) and y[0, 1] == 7 and y[1, 1] == 15


def test_blocks_of_images_keep_ties_and_nans(monkeypatch):
    """The CPU's max-pool runs on blocks of images turned channels-last (backend/cpu.py).  With blocks of
    two images of 180 kB (float64), each part makes several: ties, a NaN and every block still come out
    as one NumPy pass over all windows says, and the gradient as PyTorch's."""
    import torch
    from numpy.lib.stride_tricks import sliding_window_view

    from minigrad.backend import cpu
    monkeypatch.setattr(cpu, "POOL_BLOCK_BYTES", 2 * 3 * 75 * 100 * 8)
    blocks_per_part, blocks = [], cpu._blocks

    def counted_blocks(*args):
        result = blocks(*args)
        blocks_per_part.append(len(result))
        return result
    monkeypatch.setattr(cpu, "_blocks", counted_blocks)

    x = np.random.default_rng(0).integers(0, 3, (16, 3, 75, 100)).astype(np.float64)   # values 0, 1, 2: ties everywhere
    x[13, 1, 10, 11:13] = np.nan                      # two NaNs in one window: its arg-max is the first
    y, argmax = cpu.max_pool_forward(x, (3, 3), (2, 2), (0, 0), (37, 49))
    assert max(blocks_per_part) > 1

    windows = sliding_window_view(x, (3, 3), axis=(2, 3))[:, :, ::2, ::2].reshape(16, 3, 37, 49, 9)
    np.testing.assert_array_equal(y, windows.max(axis=-1))             # NaN where a window holds one
    np.testing.assert_array_equal(argmax, windows.argmax(axis=-1))     # the first maximum; the first NaN

    finite = mg.tensor(x[:13], requires_grad=True)
    F.max_pool2d(finite, 3, 2).sum().backward()
    theirs = torch.tensor(x[:13], requires_grad=True)
    torch.nn.functional.max_pool2d(theirs, 3, 2).sum().backward()
    np.testing.assert_array_equal(finite.grad.numpy(), theirs.grad.numpy())
