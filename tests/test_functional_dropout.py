"""Dropout: gradcheck with a fixed mask, PyTorch on the same mask, statistics, both conventions, and refusals."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigrad as mg
import minigrad.functional as F
from minigrad.functional.dropout import Dropout
from support import DEVICES, array, check, seeds


@pytest.mark.parametrize("device", DEVICES)
@given(shape=hnp.array_shapes(min_dims=1, max_dims=4, max_side=5), seed=seeds, p=st.floats(0.05, 0.95))
def test_dropout_with_a_fixed_mask(device, shape, seed, p):
    x = array(seed, shape)
    keep = np.random.default_rng(seed).random(shape) >= p
    mask = mg.tensor(keep, device=device).data
    op = lambda t: Dropout(mask, 1 / (1 - p))(t)  # noqa: E731

    def torch_dropout(t):
        import torch
        return t * torch.tensor(keep) / (1 - p)
    check(op, torch_dropout, [x], device)


@pytest.mark.parametrize("inverted", [True, False])
def test_dropout_statistics_and_conventions(inverted):
    mg.manual_seed(0)
    p, x = 0.3, mg.ones(400, 500)
    y = F.dropout(x, p, training=True, inverted=inverted).numpy()
    kept = y != 0
    assert abs(1 - kept.mean() - p) < 0.005                     # 200,000 draws: std of the fraction ≈ 0.001
    expected_value = 1 / (1 - p) if inverted else 1.0
    np.testing.assert_allclose(y[kept], expected_value, rtol=1e-6)
    at_eval = F.dropout(x, p, training=False, inverted=inverted).numpy()
    np.testing.assert_allclose(at_eval, 1.0 if inverted else 1 - p, rtol=1e-6)
    # The equivalence: under either convention a unit's expected value in training is its value at evaluation.
    assert abs(y.mean() - at_eval.mean()) < 0.01


def test_identity_cases_return_the_input():
    x = mg.randn(3, 4)
    assert F.dropout(x, 0.0) is x
    assert F.dropout(x, 0.5, training=False) is x


@pytest.mark.parametrize("p", [1.0, -0.1, 1.5])
def test_p_outside_0_1_is_refused(p):
    with pytest.raises(ValueError, match=f"dropout: p must be in \\[0, 1\\), got {p}"):
        F.dropout(mg.zeros(2), p)


def test_dropout_masks_repeat_with_the_seed():
    mg.manual_seed(7)
    first = F.dropout(mg.ones(50), 0.5).numpy()
    mg.manual_seed(7)
    np.testing.assert_array_equal(first, F.dropout(mg.ones(50), 0.5).numpy())
