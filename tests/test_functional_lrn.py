"""Local response normalization, the paper's formula: a naive reference, gradcheck and PyTorch (alpha·n).

Large α (1.0) with k = 1 makes the window matter: with the paper's α = 1e-4 a wrong window changes
the output by ~1e-4 relative and could hide under loose tolerances.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg
import minigrad.functional as F
from support import DEVICES, array, check, check_against_torch, seeds

lrn_settings = dict(size=st.integers(1, 7), alpha=st.sampled_from([1e-4, 1.0]), beta=st.sampled_from([0.5, 0.75]),
                    k=st.sampled_from([1.0, 2.0]))


def paper_lrn(a, n, alpha, beta, k):
    """The paper's formula written as plainly as possible: one channel at a time, window clipped at the edges."""
    channels = a.shape[1]
    b = np.empty_like(a)
    for i in range(channels):
        lo, hi = max(0, i - n // 2), min(channels - 1, i + (n - 1) // 2)
        b[:, i] = a[:, i] / (k + alpha * (a[:, lo:hi + 1] ** 2).sum(axis=1)) ** beta
    return b


@pytest.mark.parametrize("device", DEVICES)
@given(seed=seeds, channels=st.integers(1, 9), hw=st.integers(1, 3), **lrn_settings)
def test_lrn_matches_the_paper_formula_gradcheck_and_torch(device, seed, channels, hw, size, alpha, beta, k):
    a = array(seed, (2, channels, hw, hw)) * 2
    lrn = lambda t: F.local_response_norm(t, size, alpha, beta, k)  # noqa: E731
    np.testing.assert_allclose(lrn(mg.tensor(a, device=device)).numpy(), paper_lrn(a, size, alpha, beta, k), rtol=1e-12)

    def torch_lrn(t):
        import torch
        return torch.nn.functional.local_response_norm(t, size, alpha=alpha * size, beta=beta, k=k)
    check(lrn, torch_lrn, [a], device)


@pytest.mark.parametrize("device", DEVICES)
def test_lrn_at_alexnet_conv1_shape_matches_torch_in_float32(device):
    a = (array(0, (2, 96, 55, 55)) * 3).astype(np.float32)

    def torch_lrn(t):
        import torch
        return torch.nn.LocalResponseNorm(5, alpha=1e-4 * 5, beta=0.75, k=2.0)(t)
    check_against_torch(lambda t: F.local_response_norm(t), torch_lrn, [a], device, rtol=1e-5, atol=1e-6)


def test_lrn_with_the_papers_constants_at_the_scale_of_real_activations():
    # Activations of a few tens (as after conv1 on raw pixels) make α·Σa² comparable to k = 2,
    # so a wrong α (e.g. PyTorch's α/n) or a wrong window shows far above the tolerance.
    a = array(3, (2, 16, 4, 4)) * 30
    np.testing.assert_allclose(F.local_response_norm(mg.tensor(a)).numpy(), paper_lrn(a, 5, 1e-4, 0.75, 2.0), rtol=1e-12)
    wrong_alpha = paper_lrn(a, 5, 1e-4 / 5, 0.75, 2.0)
    assert np.abs(F.local_response_norm(mg.tensor(a)).numpy() - wrong_alpha).max() > 0.1


def test_lrn_bad_input_messages():
    with pytest.raises(ValueError, match=r"local_response_norm: expected input of shape \(N, C, H, W\), got \(4, 5\)"):
        F.local_response_norm(mg.zeros(4, 5))
    with pytest.raises(ValueError, match="local_response_norm: size must be ≥ 1, got 0"):
        F.local_response_norm(mg.zeros(1, 4, 2, 2), size=0)
