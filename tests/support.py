"""Helpers shared by the tests: devices to run on, input arrays with safe values, and the PyTorch oracle."""
import numpy as np
import pytest
from hypothesis import strategies as st

import minigrad as mg

# Every op test runs on each device; the CUDA case skips itself where there is no GPU.
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]

seeds = st.integers(0, 2**32 - 1)


def array(seed, shape, kind="any"):
    """A float64 array of ``shape`` whose values suit the op under test.

    any       N(0, 1)
    positive  in [0.5, 2]           (log, sqrt, the base of pow)
    nonzero   ±[0.5, 2]             (divisors)
    away      ±[0.1, 2]             (relu: no value within eps of the kink)
    distinct  all different, at least 1/size apart   (max: no ties, no near-ties)
    """
    rng = np.random.default_rng(seed)
    shape = tuple(shape)
    if kind == "any":
        return rng.standard_normal(shape)
    if kind == "positive":
        return rng.uniform(0.5, 2.0, shape)
    if kind in ("nonzero", "away"):
        low = 0.5 if kind == "nonzero" else 0.1
        return rng.uniform(low, 2.0, shape) * rng.choice([-1.0, 1.0], shape)
    if kind == "distinct":
        size = int(np.prod(shape))
        return (rng.permutation(size) * (4.0 / max(size, 1)) - 2.0).reshape(shape)
    raise ValueError(kind)


def leaves(arrays, device="cpu"):
    return [mg.tensor(a, requires_grad=True, device=device) for a in arrays]


def check_against_torch(mg_fn, torch_fn, arrays, device="cpu", rtol=1e-7, atol=1e-10, seed=0):
    """Run the same expression in minigrad and PyTorch: outputs and input gradients must agree.

    The upstream gradient is random, so every output element's gradient path is exercised.
    ``atol`` is relative to the largest magnitude of each compared array: float32 sums of
    thousands of terms (a conv weight gradient) carry absolute errors of that order.
    """
    torch = pytest.importorskip("torch")
    xs = leaves(arrays, device)
    y = mg_fn(*xs)
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    ty = torch_fn(*ts)
    assert_close(y.numpy(), ty.detach().numpy(), rtol, atol, "forward")
    upstream = np.random.default_rng(seed).standard_normal(y.shape).astype(arrays[0].dtype)
    y.backward(mg.tensor(upstream, device=device))
    ty.backward(torch.tensor(upstream))
    for i, (x, t) in enumerate(zip(xs, ts)):
        assert_close(x.grad.numpy(), t.grad.numpy(), rtol, atol, f"gradient of input {i}")


def check(mg_fn, torch_fn, arrays, device="cpu", **tolerances):
    """The two independent checks every differentiable op gets: a float64 gradcheck of ``mg_fn`` at
    ``arrays``, and the same expression against PyTorch (``check_against_torch``, with ``tolerances``)."""
    assert mg.gradcheck(mg_fn, leaves(arrays, device))
    check_against_torch(mg_fn, torch_fn, arrays, device, **tolerances)


def assert_close(actual, expected, rtol, atol, what):
    scale = float(np.abs(expected).max(initial=0.0)) or 1.0
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol * scale, err_msg=what)
