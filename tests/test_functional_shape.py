"""reshape, transpose, flatten, indexing, concatenate and split: gradcheck and PyTorch."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigrad as mg
import minigrad.functional as F
from support import DEVICES, array, check, seeds

shapes = hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=4)


def torch_op(name):
    """torch.<name>, imported only when the PyTorch side runs (check_against_torch skips without torch)."""
    import torch
    return getattr(torch, name)


@pytest.mark.parametrize("device", DEVICES)
@given(shape=shapes, seed=seeds, data=st.data())
def test_reshape(device, shape, seed, data):
    new_shape = list(data.draw(st.permutations(shape)))          # same number of elements, other order of sides
    new_shape[data.draw(st.integers(0, len(shape) - 1))] = -1    # and one side left for reshape to infer
    check(lambda x: x.reshape(*new_shape), lambda t: t.reshape(*new_shape), [array(seed, shape)], device)


@pytest.mark.parametrize("device", DEVICES)
@given(shape=shapes, seed=seeds, data=st.data())
def test_transpose_and_permute(device, shape, seed, data):
    axes = data.draw(st.permutations(range(len(shape))))
    check(lambda x: x.permute(*axes) * 1.0, lambda t: t.permute(*axes) * 1.0, [array(seed, shape)], device)
    check(lambda x: x.T, lambda t: t.permute(*reversed(range(t.ndim))), [array(seed, shape)], device)


@pytest.mark.parametrize("device", DEVICES)
@given(shape=shapes, seed=seeds, data=st.data())
def test_flatten(device, shape, seed, data):
    start = data.draw(st.integers(0, len(shape) - 1))
    end = data.draw(st.integers(start, len(shape) - 1))
    x = array(seed, shape)
    check(lambda t: t.flatten(start, end), lambda t: t.flatten(start, end), [x], device)


@st.composite
def basic_index(draw, shape):
    """A tuple of ints and slices (positive steps), possibly shorter than the shape."""
    parts = []
    for side in shape[:draw(st.integers(1, len(shape)))]:
        if draw(st.booleans()):
            parts.append(draw(st.integers(-side, side - 1)))
        else:
            start = draw(st.integers(0, side - 1))
            parts.append(slice(start, draw(st.integers(start + 1, side)), draw(st.integers(1, 2))))
    return tuple(parts)


@pytest.mark.parametrize("device", DEVICES)
@given(shape=shapes, seed=seeds, data=st.data())
def test_getitem_basic_slicing(device, shape, seed, data):
    index = data.draw(basic_index(shape))
    check(lambda x: x[index] * 1.0, lambda t: t[index] * 1.0, [array(seed, shape)], device)


@pytest.mark.parametrize("device", DEVICES)
@given(shape=shapes, seed=seeds, data=st.data())
def test_getitem_integer_arrays_with_repeats(device, shape, seed, data):
    rows = data.draw(st.lists(st.integers(0, shape[0] - 1), min_size=1, max_size=6))  # repeats allowed
    index = np.array(rows)
    check(lambda x: x[index], lambda t: t[index], [array(seed, shape)], device)
    if len(shape) >= 2:   # mixed: integer array on axis 0, slice on axis 1
        check(lambda x: x[index, 1:], lambda t: t[index, 1:], [array(seed, shape)], device)


@pytest.mark.parametrize("device", DEVICES)
@given(shape=shapes, seed=seeds)
def test_getitem_boolean_mask(device, shape, seed):
    mask = np.random.default_rng(seed).random(shape) > 0.5
    check(lambda x: x[mask], lambda t: t[mask], [array(seed, shape)], device)


def test_getitem_picked_twice_gets_both_gradients():
    x = mg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x[[0, 0, 2]].sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 0.0, 1.0])


def test_getitem_out_of_range_names_the_shape():
    with pytest.raises(IndexError, match=r"getitem: index 5 does not fit a tensor of shape \(3,\)"):
        mg.zeros(3)[5]


@pytest.mark.parametrize("device", DEVICES)
@given(shape=shapes, seed=seeds, data=st.data())
def test_concatenate(device, shape, seed, data):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    sizes = data.draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    arrays = []
    for i, n in enumerate(sizes):
        piece = list(shape)
        piece[axis] = n
        arrays.append(array(seed + i, piece))
    check(lambda *xs: mg.concatenate(xs, axis), lambda *ts: torch_op("cat")(ts, axis), arrays, device)


@pytest.mark.parametrize("device", DEVICES)
@given(shape=shapes, seed=seeds, data=st.data())
def test_split(device, shape, seed, data):
    axis = data.draw(st.integers(0, len(shape) - 1))
    size = data.draw(st.integers(1, shape[axis]))
    # weigh each piece differently, so a gradient sent to the wrong piece cannot go unnoticed
    combine = lambda pieces: sum((p * (i + 1)).sum() for i, p in enumerate(pieces))  # noqa: E731
    check(lambda x: combine(mg.split(x, size, axis)),
          lambda t: combine(torch_op("split")(t, size, axis)), [array(seed, shape)], device)


def test_split_pieces_follow_torch_semantics():
    x = mg.zeros(7, 2)
    assert [p.shape for p in mg.split(x, 3)] == [(3, 2), (3, 2), (1, 2)]
    assert [p.shape for p in mg.split(x, [2, 5])] == [(2, 2), (5, 2)]


def test_unused_split_piece_gets_a_zero_gradient():
    x = mg.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    left, right = mg.split(x, 2)
    (left * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3, 3, 0, 0])


def test_shape_errors_name_the_op_and_the_shapes():
    with pytest.raises(ValueError, match=r"reshape: cannot reshape a tensor of shape \(2, 3\) \(6 elements\) into \(4,\)"):
        mg.zeros(2, 3).reshape(4)
    with pytest.raises(ValueError, match=r"concatenate: inputs must have the same shape except along axis 1, got \(2, 3\), \(3, 3\)"):
        mg.concatenate([mg.zeros(2, 3), mg.zeros(3, 3)], axis=1)
    with pytest.raises(ValueError, match=r"split: sizes \[2, 2\] add up to 4, but axis 0 of shape \(5,\) has 5 elements"):
        mg.split(mg.zeros(5), [2, 2])
    with pytest.raises(ValueError, match=r"transpose: axes \(0, 0\) are not a permutation"):
        mg.zeros(2, 3).transpose(0, 0)


def test_axes_out_of_range_are_refused_by_name():
    x = mg.zeros(2, 3)
    cases = [(lambda: mg.cat([x, x], 2), "concatenate: axis 2"), (lambda: x.permute(2, 1), "transpose: axis 2"),
             (lambda: mg.split(x, 1, 2), "split: axis 2"), (lambda: x.flatten(0, 5), "flatten: axis 5"),
             (lambda: F.log_softmax(x, 2), "log_softmax: axis 2")]
    for call, message in cases:
        with pytest.raises(ValueError, match=message + r" is out of range for a tensor with 2 dimension\(s\)"):
            call()
    with pytest.raises(ValueError, match=r"flatten: start_axis 1 comes after end_axis 0"):
        x.flatten(1, 0)
    with pytest.raises(TypeError, match=r"concatenate: expected a list or tuple of Tensors"):
        mg.cat(x)
    with pytest.raises(ValueError, match="concatenate: cannot join 0-d tensors"):
        mg.cat([mg.tensor(1.0), mg.tensor(2.0)])
