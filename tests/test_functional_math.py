"""Element-wise ops and matmul: gradcheck on hypothesis-drawn (broadcasting) shapes, and PyTorch as an oracle."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigrad as mg
import minigrad.functional as F
from support import DEVICES, array, check, seeds

broadcastable_pairs = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, min_side=1, max_side=4)
shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)

# name: (minigrad expression, torch expression, value kind of each input)
BINARY = {
    "add": (lambda a, b: a + b, lambda a, b: a + b, ("any", "any")),
    "sub": (lambda a, b: a - b, lambda a, b: a - b, ("any", "any")),
    "mul": (lambda a, b: a * b, lambda a, b: a * b, ("any", "any")),
    "div": (lambda a, b: a / b, lambda a, b: a / b, ("any", "nonzero")),
    "pow": (lambda a, b: a ** b, lambda a, b: a ** b, ("positive", "any")),
}
UNARY = {
    "neg": (lambda x: -x, lambda x: -x, "any"),
    "exp": (F.exp, lambda x: x.exp(), "any"),
    "log": (F.log, lambda x: x.log(), "positive"),
    "sqrt": (F.sqrt, lambda x: x.sqrt(), "positive"),
    "relu": (F.relu, lambda x: x.relu(), "away"),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", BINARY)
@given(shapes=broadcastable_pairs, seed=seeds)
def test_binary_op_gradcheck_and_torch(name, device, shapes, seed):
    mg_fn, torch_fn, kinds = BINARY[name]
    arrays = [array(seed + i, s, k) for i, (s, k) in enumerate(zip(shapes.input_shapes, kinds))]
    check(mg_fn, torch_fn, arrays, device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", UNARY)
@given(shape=shapes, seed=seeds)
def test_unary_op_gradcheck_and_torch(name, device, shape, seed):
    mg_fn, torch_fn, kind = UNARY[name]
    x = array(seed, shape, kind)
    check(mg_fn, torch_fn, [x], device)


@pytest.mark.parametrize("device", DEVICES)
@given(shape=shapes, seed=seeds, c=st.floats(0.5, 3.0))
def test_python_numbers_on_either_side(device, shape, seed, c):
    x = array(seed, shape, "nonzero")
    expression = lambda t: (c - t) * 2 + 1 / t - t / c + c ** (t * 0.1) + t ** 2  # noqa: E731
    check(expression, expression, [x], device)


def test_python_numbers_keep_float32():
    x = mg.tensor([1.0, 2.0])
    assert (x * 0.5 + 1).dtype == np.float32
    assert (2.0 ** x - x ** 2).dtype == np.float32


@st.composite
def matmul_shapes(draw):
    """Operand shapes for matmul: batched with broadcasting, or 1-D on either side."""
    batch = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=2, max_side=3))
    n, k, m = (draw(st.integers(1, 4)) for _ in range(3))
    a = (k,) if draw(st.booleans()) and draw(st.booleans()) else batch.input_shapes[0] + (n, k)
    b = (k,) if draw(st.booleans()) and draw(st.booleans()) else batch.input_shapes[1] + (k, m)
    return a, b


@pytest.mark.parametrize("device", DEVICES)
@given(operand_shapes=matmul_shapes(), seed=seeds)
def test_matmul_gradcheck_and_torch(device, operand_shapes, seed):
    arrays = [array(seed, operand_shapes[0]), array(seed + 1, operand_shapes[1])]
    check(lambda a, b: a @ b, lambda a, b: a @ b, arrays, device)


def test_matmul_shape_mismatch_names_both_shapes():
    a, b = mg.zeros(2, 3), mg.zeros(4, 5)
    with pytest.raises(ValueError, match=r"matmul: shapes \(2, 3\) and \(4, 5\) do not line up: .*\(3\).*\(4\)"):
        a @ b


def test_matmul_refuses_scalars():
    with pytest.raises(ValueError, match="matmul: both operands need at least 1 dimension"):
        F.matmul(mg.tensor(2.0), mg.zeros(3))


def test_only_the_inputs_that_need_a_gradient_get_one():
    a = mg.tensor([1.0, 2.0], requires_grad=True)
    b = mg.tensor([3.0, 4.0])
    (a * b).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [3.0, 4.0])
    assert b.grad is None


def test_pow_gradients_at_a_zero_base_match_torch():
    torch = pytest.importorskip("torch")
    for base, exponent in [(0.0, 0.0), (0.0, 2.0), (0.0, 0.5), (2.0, 0.0)]:
        a, b = mg.tensor([base], requires_grad=True, dtype=mg.float64), mg.tensor([exponent], requires_grad=True, dtype=mg.float64)
        (a ** b).sum().backward()
        ta = torch.tensor([base], dtype=torch.float64, requires_grad=True)
        tb = torch.tensor([exponent], dtype=torch.float64, requires_grad=True)
        (ta ** tb).sum().backward()
        np.testing.assert_allclose([a.grad.item(), b.grad.item()], [ta.grad.item(), tb.grad.item()], err_msg=(base, exponent))


def test_matmul_batch_mismatch_names_the_op():
    with pytest.raises(ValueError, match=r"matmul: the batch axes of shapes \(2, 3, 4\) and \(5, 4, 1\) do not broadcast"):
        mg.zeros(2, 3, 4) @ mg.zeros(5, 4, 1)
