"""gradcheck itself: it passes correct ops, catches a wrong backward with a readable table, guards float64."""
import re
import warnings

import numpy as np
import pytest

import minigrad as mg
import minigrad.functional as F


class SquareWithWrongBackward(mg.Function):
    """y = x², with the classic mistake in backward: the factor 2 is missing."""

    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, gy):
        return gy * self.x          # should be 2·x·gy


def test_passes_a_correct_function():
    x = mg.tensor(np.random.default_rng(0).standard_normal((3, 4)), requires_grad=True)
    w = mg.tensor(np.random.default_rng(1).standard_normal((4, 2)), requires_grad=True)
    assert mg.gradcheck(lambda x, w: F.log_softmax(x @ w, 1), [x, w]) is True


def test_a_wrong_backward_fails_with_a_table_that_points_at_the_element():
    values = np.array([[0.5, -1.0], [3.0, 2.0]])
    x = mg.tensor(values, requires_grad=True)
    c = mg.tensor(np.ones(2), requires_grad=True)            # a second, correct input
    with pytest.raises(mg.GradcheckError) as info:
        mg.gradcheck(lambda x, c: SquareWithWrongBackward()(x) + c, [x, c])
    message = str(info.value)
    assert "gradcheck failed for 1 of 2 input(s)" in message
    lines = message.splitlines()
    assert lines[1].split() == ["input", "shape", "max", "abs", "err", "max", "rel", "err", "worst", "index",
                                "analytic", "numeric", "status"]
    bad, good = lines[2], lines[3]
    assert bad.startswith("0") and bad.endswith("FAIL") and good.startswith("1") and good.endswith("ok")
    # The worst element is the largest |x|: (1, 0), where analytic = x·r and numeric = 2·x·r.
    assert "(1, 0)" in bad
    analytic, numeric = (float(v) for v in re.findall(r"-?\d\.\d+e[+-]\d+", bad)[2:4])
    assert numeric == pytest.approx(2 * analytic, rel=1e-6)


def test_float32_inputs_are_checked_as_float64_copies_with_a_warning():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert mg.gradcheck(lambda t: t * t, [x])
    assert "input 0 is float32; checking a float64 copy instead" in str(caught[0].message)


def test_needs_an_input_that_requires_grad():
    with pytest.raises(ValueError, match="gradcheck: no input requires grad"):
        mg.gradcheck(lambda t: t * 2, [mg.tensor([1.0])])


def test_functions_with_several_outputs():
    x = mg.tensor(np.arange(6.0), requires_grad=True)
    assert mg.gradcheck(lambda t: mg.split(t * t, [2, 4]), [x])


def test_nan_gradients_fail():
    class NanBackward(mg.Function):
        def forward(self, x):
            return x * 2

        def backward(self, gy):
            return gy * np.nan

    with pytest.raises(mg.GradcheckError, match="FAIL"):
        mg.gradcheck(lambda t: NanBackward()(t), [mg.tensor(np.ones(3), requires_grad=True)])


def test_gradcheck_leaves_existing_gradients_alone():
    x = mg.tensor(np.ones(2), requires_grad=True)
    x.grad = mg.tensor(np.array([7.0, 7.0]))
    mg.gradcheck(lambda t: t * t, [x])
    np.testing.assert_array_equal(x.grad.numpy(), [7.0, 7.0])
