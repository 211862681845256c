"""sum / mean / max over drawn axes, with and without keepdims: gradcheck and PyTorch."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigrad as mg
from support import DEVICES, array, check, seeds


@st.composite
def shape_and_axis(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=4))
    ndim = len(shape)
    axis = draw(st.none() | st.integers(-ndim, ndim - 1)
                | st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True).map(tuple))
    return shape, axis


def torch_axes(axis, ndim):
    return tuple(range(ndim)) if axis is None else axis


REDUCTIONS = {
    # name: (minigrad, torch, value kind): max needs distinct values, so no ties decide the check
    "sum": (lambda x, a, k: x.sum(a, k), lambda t, a, k: t.sum(dim=torch_axes(a, t.ndim), keepdim=k), "any"),
    "mean": (lambda x, a, k: x.mean(a, k), lambda t, a, k: t.mean(dim=torch_axes(a, t.ndim), keepdim=k), "any"),
    "max": (lambda x, a, k: x.max(a, k), lambda t, a, k: t.amax(dim=torch_axes(a, t.ndim), keepdim=k), "distinct"),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", REDUCTIONS)
@given(shape_axis=shape_and_axis(), keepdims=st.booleans(), seed=seeds)
def test_reduction_gradcheck_and_torch(name, device, shape_axis, keepdims, seed):
    shape, axis = shape_axis
    mg_fn, torch_fn, kind = REDUCTIONS[name]
    x = array(seed, shape, kind)
    check(lambda t: mg_fn(t, axis, keepdims), lambda t: torch_fn(t, axis, keepdims), [x], device)


def test_max_ties_share_the_gradient_equally():
    x = mg.tensor([[1.0, 3.0, 3.0], [2.0, 0.0, 1.0]], requires_grad=True)
    x.max(axis=1).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0, 0.5, 0.5], [1, 0, 0]])


def test_reduction_refuses_an_axis_out_of_range():
    with pytest.raises(ValueError, match=r"sum: axis 2 is out of range for a tensor with 2 dimension\(s\)"):
        mg.zeros(2, 3).sum(axis=2)
    with pytest.raises(ValueError, match=r"max: axis \(0, -2\) repeats an axis"):
        mg.zeros(2, 3).max(axis=(0, -2))
    assert mg.zeros(2, 3).mean(axis=np.int64(1)).shape == (2,)      # NumPy integers are axes too
