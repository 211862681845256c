"""linear: y = x Wᵀ + b, gradcheck and PyTorch, with and without bias."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg
import minigrad.functional as F
from support import DEVICES, array, check, seeds


@pytest.mark.parametrize("device", DEVICES)
@given(n=st.integers(1, 5), fan_in=st.integers(1, 6), fan_out=st.integers(1, 6), bias=st.booleans(), seed=seeds)
def test_linear_gradcheck_and_torch(device, n, fan_in, fan_out, bias, seed):
    arrays = [array(seed, (n, fan_in)), array(seed + 1, (fan_out, fan_in))] + ([array(seed + 2, (fan_out,))] if bias else [])

    def torch_linear(*ts):
        import torch
        return torch.nn.functional.linear(*ts)
    check(F.linear, torch_linear, arrays, device)


def test_linear_bad_input_messages():
    with pytest.raises(ValueError, match=r"linear: expected input of shape \(N, 9216\) for weight \(4096, 9216\), got \(2, 4096\)"):
        F.linear(mg.zeros(2, 4096), mg.zeros(4096, 9216))
    with pytest.raises(ValueError, match=r"linear: bias must have shape \(3,\), got \(4,\)"):
        F.linear(mg.zeros(2, 5), mg.zeros(3, 5), mg.zeros(4))
