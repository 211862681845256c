"""conv2d (im2col, groups): gradcheck on hypothesis-drawn geometry, PyTorch at AlexNet's shapes, input checks."""
import contextlib
import functools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minigrad as mg
import minigrad.functional as F
from support import DEVICES, array, check, check_against_torch, leaves, seeds


@st.composite
def conv_geometry(draw):
    """A convolution that fits: kernel 1..11, stride 1..4, padding 0..3, groups 1..3, small images.
    Stride 1 in both directions half the time: the CPU computes its ∂x by a route of its own."""
    groups = draw(st.sampled_from([1, 2, 3]))
    kh, kw = draw(st.integers(1, 11)), draw(st.integers(1, 11))
    stride = draw(st.one_of(st.just((1, 1)), st.tuples(st.integers(1, 4), st.integers(1, 4))))
    padding = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
    h = draw(st.integers(max(1, kh - 2 * padding[0]), max(1, kh - 2 * padding[0]) + 4))
    w = draw(st.integers(max(1, kw - 2 * padding[1]), max(1, kw - 2 * padding[1]) + 4))
    n, c_g, o_g = draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(1, 2))
    return dict(x=(n, c_g * groups, h, w), w=(o_g * groups, c_g, kh, kw), stride=stride, padding=padding, groups=groups)


def torch_conv(stride, padding, groups):
    def conv(x, w, b):
        import torch
        return torch.nn.functional.conv2d(x, w, b, stride=stride, padding=padding, groups=groups)
    return conv


@pytest.mark.parametrize("device, columns", [("cpu", "im2col"), ("cpu", "channels-last"),
                                             pytest.param("cuda", "im2col", marks=pytest.mark.cuda)])
@settings(max_examples=60)
@given(geometry=conv_geometry(), seed=seeds)
def test_conv2d_gradcheck_and_torch(device, columns, geometry, seed):
    """Forward keeps its columns for ∂W, in either layout (the CPU picks channels-last for output rows shorter
    than 8, ``unfolds_channels_last``; here the choice is forced; the GPU has im2col's only)."""
    from minigrad.backend import cpu
    g = geometry
    arrays = [array(seed, g["x"]), array(seed + 1, g["w"]), array(seed + 2, g["w"][:1])]
    conv = lambda x, w, b: F.conv2d(x, w, b, g["stride"], g["padding"], g["groups"])  # noqa: E731
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cpu, "unfolds_channels_last", lambda out_hw: columns == "channels-last")
        y = conv(*leaves(arrays, device))
        assert y.grad_fn.cols is not None and y.grad_fn.channels_last == (columns == "channels-last")
        check(conv, torch_conv(g["stride"], g["padding"], g["groups"]), arrays, device)


def test_the_cpu_unfolds_channels_last_for_output_rows_shorter_than_8(monkeypatch):
    """backend/cpu.py's measured rule (``unfolds_channels_last``), in training (columns kept) and evaluation."""
    from minigrad.backend import cpu
    calls = []
    monkeypatch.setattr(cpu, "conv_output_channels_last", functools.partial(_counted, cpu.conv_output_channels_last, calls))
    w = mg.randn(4, 3, 3, 3, requires_grad=True)
    for width, channels_last in [(6, True), (7, True), (8, False), (15, False)]:
        x = mg.randn(2, 3, 5, width)
        assert F.conv2d(x, w, padding=1).grad_fn.channels_last is channels_last
        calls.clear()
        with mg.no_grad():
            F.conv2d(x, w, padding=1)
        assert len(calls) == channels_last


@pytest.mark.parametrize("device, columns", [("cpu", "im2col"), ("cpu", "channels-last"),
                                             pytest.param("cuda", "im2col", marks=pytest.mark.cuda)])
@settings(max_examples=40)
@given(geometry=conv_geometry(), seed=seeds)
def test_conv2d_with_fixed_weights_gradcheck_and_torch(device, columns, geometry, seed):
    """Weights that want no gradient (evaluation, frozen layers): the output and ∂x take the backend's
    other route (conv_output, which keeps no columns; backend/cpu.py runs it on blocks of images per core,
    here one image a block and one part per core however small, or for short output rows channels-last)."""
    from minigrad.backend import cpu
    g = geometry
    torch = pytest.importorskip("torch")
    w, b = array(seed + 1, g["w"]), array(seed + 2, g["w"][:1])
    fixed = mg.tensor(w, device=device), mg.tensor(b, device=device)
    conv = lambda x: F.conv2d(x, *fixed, g["stride"], g["padding"], g["groups"])  # noqa: E731
    with per_image_blocks() as calls, pytest.MonkeyPatch.context() as patch:
        patch.setattr(cpu, "unfolds_channels_last", lambda out_hw: columns == "channels-last")
        check(conv, lambda x: torch_conv(g["stride"], g["padding"], g["groups"])(x, torch.tensor(w), torch.tensor(b)),
              [array(seed, g["x"])], device)
        x = mg.tensor(array(seed, g["x"]), device=device)
        with mg.no_grad():
            calls.clear()
            fast = conv(x).numpy()
            assert calls, "the forward did not take conv_output"
        calls.clear()
        with_columns = F.conv2d(x, *leaves([w, b], device), g["stride"], g["padding"], g["groups"]).numpy()
        assert not calls, "the forward that keeps its columns took conv_output"
    np.testing.assert_allclose(fast, with_columns, rtol=1e-12, atol=1e-12)


@contextlib.contextmanager
def per_image_blocks():
    """The CPU's per-core routes on the smallest pieces (one image a block, a part per core even for tiny
    arrays), and the list of conv_output calls on either backend."""
    from minigrad.backend import cpu, cuda
    calls = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cpu, "IMAGE_BLOCK_BYTES", 1)
        patch.setattr(cpu, "SMALL", 0)
        for module in (cpu, cuda):
            patch.setattr(module, "conv_output", functools.partial(_counted, module.conv_output, calls))
        yield calls


def _counted(function, calls, *args, **kwargs):
    calls.append(function)
    return function(*args, **kwargs)


@pytest.mark.parametrize("device", DEVICES)
@settings(max_examples=30)
@given(geometry=conv_geometry(), seed=seeds)
def test_conv2d_unfolding_x_again_for_the_weight_gradient(device, geometry, seed):
    """Forward keeps x instead of the columns (the backend's ``keeps_columns`` says no, as the CPU's does for
    large maps) and backward's ``conv_weight_grad`` unfolds it again, block by block."""
    from minigrad.backend import cpu, cuda
    g = geometry
    arrays = [array(seed, g["x"]), array(seed + 1, g["w"]), array(seed + 2, g["w"][:1])]
    conv = lambda x, w, b: F.conv2d(x, w, b, g["stride"], g["padding"], g["groups"])  # noqa: E731
    with per_image_blocks(), pytest.MonkeyPatch.context() as patch:
        for module in (cpu, cuda):
            patch.setattr(module, "keeps_columns", lambda out_hw: False)
        y = conv(*leaves(arrays, device))
        assert y.grad_fn.cols is None and y.grad_fn.x is not None
        check(conv, torch_conv(g["stride"], g["padding"], g["groups"]), arrays, device)


@pytest.mark.parametrize("device", DEVICES)
def test_conv2d_without_bias(device):
    arrays = [array(0, (2, 4, 6, 5)), array(1, (6, 2, 3, 3))]
    conv = lambda x, w: F.conv2d(x, w, stride=2, padding=1, groups=2)  # noqa: E731
    check(conv, lambda x, w: torch_conv(2, 1, 2)(x, w, None), arrays, device)


# AlexNet's own convolutions (float32, batch 2): conv1 11/4 on 227 and conv2 5/1/2 with groups=2.
ALEXNET_CONVS = {
    "conv1": dict(x=(2, 3, 227, 227), w=(96, 3, 11, 11), stride=4, padding=0, groups=1, out=(2, 96, 55, 55)),
    "conv2": dict(x=(2, 96, 27, 27), w=(256, 48, 5, 5), stride=1, padding=2, groups=2, out=(2, 256, 27, 27)),
    "conv3": dict(x=(2, 256, 13, 13), w=(384, 256, 3, 3), stride=1, padding=1, groups=1, out=(2, 384, 13, 13)),
    # the CPU preset's conv2 (width 0.25, 67×67 crops): rows of 7, columns kept channels-last on the CPU
    "preset conv2": dict(x=(2, 12, 7, 7), w=(32, 12, 5, 5), stride=1, padding=2, groups=1, out=(2, 32, 7, 7)),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ALEXNET_CONVS)
def test_alexnet_convolutions_match_torch_in_float32(device, name):
    c = ALEXNET_CONVS[name]
    arrays = [array(1, c["x"]).astype(np.float32), (array(2, c["w"]) * 0.05).astype(np.float32),
              array(3, c["w"][:1]).astype(np.float32)]
    conv = lambda x, w, b: F.conv2d(x, w, b, c["stride"], c["padding"], c["groups"])  # noqa: E731
    assert conv(*leaves(arrays, device)).shape == c["out"]
    check_against_torch(conv, torch_conv(c["stride"], c["padding"], c["groups"]), arrays, device, rtol=1e-4, atol=1e-5)


def test_conv2d_float32_stays_float32():
    x, w = mg.randn(1, 2, 5, 5, requires_grad=True), mg.randn(3, 2, 3, 3, requires_grad=True)
    y = F.conv2d(x, w)
    y.sum().backward()
    assert y.dtype == x.grad.dtype == w.grad.dtype == np.float32


def test_conv2d_bad_input_messages():
    x, w = mg.zeros(2, 96, 27, 27), mg.zeros(128, 48, 5, 5)
    with pytest.raises(ValueError, match=r"conv2d: expected input of shape \(N, 48, H, W\) for weight \(128, 48, 5, 5\) "
                                         r"with groups=1, got \(2, 96, 27, 27\)"):
        F.conv2d(x, w, padding=2)
    with pytest.raises(ValueError, match=r"conv2d: expected input \(N, C, H, W\) and weight .* got input shape \(96, 27, 27\)"):
        F.conv2d(x[0], w, padding=2)
    with pytest.raises(ValueError, match=r"conv2d: groups=3 must be ≥ 1 and divide the 128 output channels"):
        F.conv2d(x, w, groups=3)
    with pytest.raises(ValueError, match=r"conv2d: bias must have shape \(128,\), got \(64,\)"):
        F.conv2d(x, w, mg.zeros(64), groups=2)
    with pytest.raises(ValueError, match="conv2d: kernel 5 does not fit input height 3 with padding 0"):
        F.conv2d(mg.zeros(1, 48, 3, 9), w)
    with pytest.raises(TypeError, match=r"conv2d: stride must be an int or a pair of ints, got \(1, 2, 3\)"):
        F.conv2d(x, w, stride=(1, 2, 3), groups=2)


@pytest.mark.parametrize("device", DEVICES)
def test_a_batch_too_big_for_the_column_buffer_runs_in_chunks(device, monkeypatch):
    from minigrad.functional.conv import Conv2d
    arrays = [array(0, (5, 4, 7, 6)), array(1, (6, 2, 3, 3)), array(2, (6,))]
    conv = lambda x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=1, groups=2)  # noqa: E731
    whole = conv(*leaves(arrays, device))
    per_image = 4 * 9 * 4 * 6 * 8          # C·kh·kw·oH·oW·8 bytes
    monkeypatch.setattr(Conv2d, "max_column_bytes", 2 * per_image)   # chunks of 2, 2 and 1 images
    chunked = leaves(arrays, device)
    y = conv(*chunked)
    assert y.grad_fn.chunk == 2
    np.testing.assert_allclose(y.numpy(), whole.numpy(), rtol=1e-12)
    check(conv, torch_conv((2, 1), 1, 2), arrays, device)
