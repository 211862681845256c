"""Tensor and autograd semantics: creation, accumulation, graph shapes, depth, hooks, memory, errors."""
import gc
import weakref

import numpy as np
import pytest

import minigrad as mg


# ----- creation and description -----------------------------------------------------------------
def test_dtypes_follow_pytorch():
    assert mg.tensor([1.0, 2.0]).dtype == np.float32            # Python floats: float32
    assert mg.tensor(1.5).dtype == np.float32
    assert mg.tensor(np.zeros(2)).dtype == np.float64            # arrays keep theirs
    assert mg.tensor(np.zeros(2, np.float32)).dtype == np.float32
    assert mg.tensor([1, 2]).dtype == np.int64                   # labels stay integer
    assert mg.tensor([1, 2], dtype=mg.float64).dtype == np.float64


def test_tensor_copies_its_data():
    source = np.zeros(3)
    t = mg.tensor(source)
    source[0] = 5
    assert t.data[0] == 0
    copy = t.numpy()
    copy[1] = 7
    assert t.data[1] == 0


def test_description():
    x = mg.tensor([[1.0, 2.0, 3.0]], requires_grad=True)
    assert (x.shape, x.ndim, x.size, str(x.device), x.is_leaf) == ((1, 3), 2, 3, "cpu", True)
    y = x * 2
    assert "shape=(1, 3)" in repr(y) and "dtype=float32" in repr(y) and "device=cpu" in repr(y)
    assert "grad_fn=<Mul>" in repr(y)
    assert "requires_grad=True" in repr(x)
    assert mg.tensor([[4.0]]).item() == 4.0


def test_item_on_many_elements_is_refused():
    with pytest.raises(ValueError, match=r"item\(\) needs a tensor with one element, this one has shape \(2,\)"):
        mg.tensor([1.0, 2.0]).item()


def test_integer_tensors_cannot_require_grad():
    with pytest.raises(TypeError, match="only floating-point tensors can require gradients, got dtype int64"):
        mg.tensor([1, 2], requires_grad=True)


def test_detach_and_to_cpu():
    x = mg.tensor([1.0], requires_grad=True)
    d = (x * 2).detach()
    assert d.grad_fn is None and not d.requires_grad and d.item() == 2.0
    assert x.to("cpu") is x


def test_requires_grad_propagates_only_from_inputs_that_need_it():
    a = mg.tensor([1.0], requires_grad=True)
    b = mg.tensor([2.0])
    assert (a * b).requires_grad and not (b * b).requires_grad
    assert (b * b).grad_fn is None


# ----- backward ---------------------------------------------------------------------------------
def test_gradient_accumulates_when_a_tensor_is_used_twice():
    x = mg.tensor([3.0], requires_grad=True)
    (x * x + x).sum().backward()          # d/dx (x² + x) = 2x + 1
    assert x.grad.item() == 7.0
    (x * 4).sum().backward()              # a second backward adds into .grad
    assert x.grad.item() == 11.0


def test_diamond_graph():
    # x -> a -> (b, c) -> d: a's gradient is the sum over both paths.
    x = mg.tensor([2.0], requires_grad=True)
    a = x * 3
    b, c = a + 1, a * a
    (b * c).sum().backward()              # d = (3x+1)(9x²) -> d' = 81x² + 18x = 360 at x = 2
    assert x.grad.item() == pytest.approx(360.0)


def test_a_chain_of_10000_ops_needs_no_recursion():
    x = mg.tensor([1.0], requires_grad=True, dtype=mg.float64)
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.sum().backward()
    assert x.grad.item() == pytest.approx(1.0001 ** 10_000)


def test_backward_of_non_scalar_needs_grad():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"needs a single-element output; this one has shape \(2,\)"):
        (x * 2).backward()
    (x * 2).backward(mg.tensor([1.0, 10.0]))
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 20.0])
    with pytest.raises(ValueError, match=r"grad has shape \(3,\), expected the tensor's shape \(2,\)"):
        (x * 2).backward(np.ones(3))


def test_backward_on_a_constant_is_refused():
    with pytest.raises(RuntimeError, match="backward\\(\\) on a tensor that does not require grad"):
        mg.tensor([1.0]).sum().backward()


def test_no_grad_records_nothing_and_restores_afterwards():
    x = mg.tensor([1.0], requires_grad=True)
    with mg.no_grad():
        y = x * 2
        assert not mg.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None
    with pytest.raises(KeyError), mg.no_grad():
        raise KeyError
    assert mg.is_grad_enabled() and (x * 2).requires_grad


def test_retain_grad_keeps_the_gradient_of_a_non_leaf():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    hidden, other = x * 3, x * 5
    hidden.retain_grad()
    (hidden * other).sum().backward()
    np.testing.assert_array_equal(hidden.grad.numpy(), other.numpy())
    assert other.grad is None


def test_hooks_see_and_can_replace_gradients():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    hidden = x * 3
    hidden.register_hook(lambda g: seen.append(g.numpy()))
    handle = hidden.register_hook(lambda g: g * 10)      # replaces the gradient flowing on
    x.register_hook(lambda g: seen.append(("leaf", g.numpy())))
    hidden.sum().backward()
    np.testing.assert_array_equal(seen[0], [1.0, 1.0])
    np.testing.assert_array_equal(seen[1][1], [30.0, 30.0])
    np.testing.assert_array_equal(x.grad.numpy(), [30.0, 30.0])
    handle.remove()
    x.grad = None
    (x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0])


def test_a_second_backward_through_a_freed_graph_is_refused():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    loss = (x.exp() * 2).sum()
    loss.backward()
    with pytest.raises(RuntimeError, match=r"backward through Sum a second time: its saved buffers were freed.*retain_graph=True"):
        loss.backward()


def test_retain_graph_allows_a_second_backward():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    loss = (x * x).sum()
    loss.backward(retain_graph=True)
    loss.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [4.0, 8.0])


def test_backward_frees_the_saved_buffers():
    x = mg.tensor(np.ones(1000), requires_grad=True)
    hidden = x.exp()                    # Exp saves its output; Mul below saves both its inputs
    saved = weakref.ref(hidden.data)
    loss = (hidden * hidden).sum()
    del hidden
    gc.collect()
    assert saved() is not None          # still held by the graph, for backward
    loss.backward()
    gc.collect()
    assert saved() is None              # released once backward is done
    assert loss.grad_fn.released and loss.grad_fn.inputs == ()


def test_retain_graph_keeps_the_saved_buffers():
    x = mg.tensor(np.ones(10), requires_grad=True)
    hidden = x.exp()
    saved = weakref.ref(hidden.data)
    loss = (hidden * hidden).sum()
    del hidden
    loss.backward(retain_graph=True)
    gc.collect()
    assert saved() is not None


def test_a_backward_with_the_wrong_number_of_gradients_is_reported():
    class TwoInputsOneGradient(mg.Function):
        def forward(self, a, b):
            return a + b

        def backward(self, gy):
            return gy

    a, b = mg.tensor([1.0], requires_grad=True), mg.tensor([2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"TwoInputsOneGradient.backward returned 1 gradient\(s\) for 2 input\(s\)"):
        TwoInputsOneGradient()(a, b).sum().backward()


# ----- dtypes, sharing and custom Functions (found in review) -----------------------------------
def test_numbers_never_truncate_integer_tensors():
    np.testing.assert_allclose((mg.tensor([1, 2]) * 0.5).numpy(), [0.5, 1.0])
    np.testing.assert_allclose((mg.tensor([4, 9]) ** 0.5).numpy(), [2.0, 3.0])


def test_float32_stays_float32_next_to_integers_and_float64_gradients():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    assert (x * mg.tensor([1, 2])).dtype == np.float32
    assert (x ** mg.tensor(2)).dtype == np.float32
    (x * 2).backward(np.ones(2))                       # a float64 upstream gradient
    assert x.grad.dtype == np.float32
    (x * np.array([2.0, 3.0])).sum().backward()        # a float64 array constant
    assert x.grad.dtype == np.float32


def test_gradients_of_different_tensors_never_share_memory():
    a, b = mg.tensor([1.0, 2.0], requires_grad=True), mg.tensor([3.0, 4.0], requires_grad=True)
    upstream = np.ones(2, dtype=np.float32)
    (a + b).backward(upstream)                         # Add hands the same array to both inputs
    a.grad.data *= 10
    np.testing.assert_array_equal(b.grad.numpy(), [1.0, 1.0])
    a.grad.data[0] = 99
    np.testing.assert_array_equal(upstream, [1.0, 1.0])    # nor with the caller's gradient


def test_the_callers_gradient_is_used_as_it_is_but_never_becomes_a_grad():
    seen = []

    class Record(mg.Function):
        def forward(self, x):
            return x.copy()

        def backward(self, gy):
            seen.append(gy)
            return gy                                   # handed on unchanged: it reaches x.grad

    x = mg.tensor(np.zeros((2, 3), np.float32), requires_grad=True)
    upstream = np.ones((2, 3), np.float32)
    Record()(x).backward(upstream)
    assert np.shares_memory(seen[0], upstream)          # no copy on the way in
    assert not np.shares_memory(x.grad.data, upstream)  # but x.grad is x's own
    leaf = mg.tensor(np.zeros(3, np.float32), requires_grad=True)
    leaf_upstream = np.ones(3, np.float32)
    leaf.backward(leaf_upstream[:])                     # a view of the caller's array, straight into a leaf
    assert not np.shares_memory(leaf.grad.data, leaf_upstream)
    a, b = mg.tensor(np.zeros(3, np.float32), requires_grad=True), mg.tensor(np.zeros(3, np.float32), requires_grad=True)
    foreign = np.frombuffer(bytearray(24), dtype=np.float32)   # on memory NumPy did not allocate (as torch's .numpy())
    mg.cat([a, b]).backward(foreign)                    # split's backward hands each input a view of it
    assert not np.shares_memory(a.grad.data, foreign) and not np.shares_memory(b.grad.data, foreign)


def test_a_backward_may_return_none_for_a_non_leaf_input():
    class StopGradient(mg.Function):
        def forward(self, x):
            return x.copy()

        def backward(self, gy):
            return None

    x, w = mg.tensor([1.0, 2.0], requires_grad=True), mg.tensor([1.0, 1.0], requires_grad=True)
    (StopGradient()(x * 2) + w).sum().backward()
    assert x.grad is None
    np.testing.assert_array_equal(w.grad.numpy(), [1.0, 1.0])


def test_a_hook_returning_the_wrong_shape_is_named():
    x = mg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    hidden = x * 2

    def summing_hook(g):
        return g.sum()
    hidden.register_hook(summing_hook)
    with pytest.raises(RuntimeError, match=r"hook 'summing_hook' returned a gradient of shape \(\) on cpu; the tensor "
                                           r"it is registered on has shape \(3,\) on cpu"):
        hidden.sum().backward()


def test_a_hook_may_remove_itself():
    x = mg.tensor([1.0], requires_grad=True)
    calls = []
    handles = []
    handles.append(x.register_hook(lambda g: (calls.append("first"), handles[0].remove())[0]))
    x.register_hook(lambda g: calls.append("second"))
    (x * 1).sum().backward()
    assert calls == ["first", "second"]


def test_hooks_run_even_when_nobody_holds_the_tensor_any_more():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    hidden = x * 3
    hidden.register_hook(lambda g: seen.append(g.numpy()))
    loss = (hidden * 2).exp().sum()
    del hidden                     # only the graph refers to it now; backward frees links as it goes
    loss.backward()
    assert len(seen) == 1 and seen[0].shape == (2,)
