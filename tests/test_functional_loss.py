"""log_softmax and cross_entropy: gradcheck, PyTorch, numerical stability and input checks."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigrad as mg
import minigrad.functional as F
from support import DEVICES, array, check, seeds


@pytest.mark.parametrize("device", DEVICES)
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5), seed=seeds, data=st.data())
def test_log_softmax(device, shape, seed, data):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = array(seed, shape) * 3
    check(lambda t: F.log_softmax(t, axis), lambda t: t.log_softmax(axis), [x], device)


@pytest.mark.parametrize("device", DEVICES)
@given(n=st.integers(1, 6), classes=st.integers(1, 6), seed=seeds)
def test_cross_entropy(device, n, classes, seed):
    logits = array(seed, (n, classes)) * 3
    targets = np.random.default_rng(seed).integers(0, classes, n)

    def torch_loss(t):
        import torch
        return torch.nn.functional.cross_entropy(t, torch.tensor(targets))
    check(lambda t: F.cross_entropy(t, targets), torch_loss, [logits], device)


def test_cross_entropy_is_stable_for_huge_logits():
    logits = mg.tensor([[1000.0, 0.0, -1000.0], [0.0, 5000.0, 0.0]], requires_grad=True)
    loss = F.cross_entropy(logits, [0, 0])
    loss.backward()
    assert np.isfinite(loss.item()) and np.isclose(loss.item(), 2500.0)   # (0 + 5000) / 2
    np.testing.assert_allclose(logits.grad.numpy(), [[0, 0, 0], [-0.5, 0.5, 0]], atol=1e-6)
    assert np.all(np.isfinite(F.log_softmax(logits, 1).numpy()))


def test_cross_entropy_accepts_tensor_list_and_array_targets():
    logits = mg.tensor(np.eye(3) * 4)     # each row: 4 on its own class, 0 on the two others
    right = np.log(1 + 2 * np.exp(-4))    # −log(e⁴ / (e⁴ + 2))
    wrong = np.log(np.exp(4) + 2)         # −log(1 / (e⁴ + 2))
    for targets in ([0, 1, 2], np.array([0, 1, 2]), mg.tensor([0, 1, 2])):
        assert F.cross_entropy(logits, targets).item() == pytest.approx(right)
    assert F.cross_entropy(logits, [1, 2, 0]).item() == pytest.approx(wrong)


def test_cross_entropy_bad_input_messages():
    logits = mg.zeros(4, 3)
    with pytest.raises(ValueError, match=r"cross_entropy: logits must be 2-D \(batch, classes\), got shape \(4, 3, 1\)"):
        F.cross_entropy(logits.reshape(4, 3, 1), [0, 1, 2, 0])
    with pytest.raises(ValueError, match=r"cross_entropy: targets must have shape \(4,\) to match logits \(4, 3\), got \(3,\)"):
        F.cross_entropy(logits, [0, 1, 2])
    with pytest.raises(TypeError, match="cross_entropy: targets must be integer class indices, got dtype float64"):
        F.cross_entropy(logits, [0.0, 1.0, 2.0, 0.0])
    with pytest.raises(ValueError, match=r"cross_entropy: targets must lie in \[0, 3\), got values from 0 to 3"):
        F.cross_entropy(logits, [0, 1, 2, 3])
