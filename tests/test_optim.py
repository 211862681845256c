"""SGD with the paper's update rule, its relation to PyTorch's SGD, and the learning-rate schedules."""
import numpy as np
import pytest

import minigrad as mg


def one_parameter(values, grad):
    w = mg.nn.Parameter(np.array(values, dtype=np.float64))
    w.grad = mg.tensor(np.array(grad, dtype=np.float64))
    return w


def test_one_step_is_the_paper_update_by_hand():
    w = one_parameter([1.0, -2.0], [0.5, 0.25])
    opt = mg.optim.SGD([w], lr=0.01, momentum=0.9, weight_decay=0.0005)
    opt.step()
    # v = 0.9·0 − 0.0005·0.01·w − 0.01·g ;  w = w + v
    v = -0.0005 * 0.01 * np.array([1.0, -2.0]) - 0.01 * np.array([0.5, 0.25])
    np.testing.assert_allclose(w.numpy(), np.array([1.0, -2.0]) + v, rtol=1e-15)
    w.grad = mg.tensor(np.array([0.1, 0.1]))
    before = w.numpy()
    opt.step()
    v2 = 0.9 * v - 0.0005 * 0.01 * before - 0.01 * np.array([0.1, 0.1])
    np.testing.assert_allclose(w.numpy(), before + v2, rtol=1e-15)


TARGET = np.array([3.0, -1.0, 0.5])


def gradient(w):
    return 2 * (w - TARGET)           # of the loss |w − target|²


def _trajectories(lrs):
    """Run minigrad's and PyTorch's SGD on the same quadratic with the given lr per step."""
    torch = pytest.importorskip("torch")
    w_mg = mg.nn.Parameter(np.zeros(3))
    w_t = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt_mg = mg.optim.SGD([w_mg], lr=lrs[0], momentum=0.9, weight_decay=5e-4)
    opt_t = torch.optim.SGD([w_t], lr=lrs[0], momentum=0.9, weight_decay=5e-4)
    out_mg, out_t = [w_mg.numpy()], [w_t.detach().numpy().copy()]
    for lr in lrs:
        opt_mg.lr = lr
        for group in opt_t.param_groups:
            group["lr"] = lr
        w_mg.grad = mg.tensor(gradient(w_mg.numpy()))
        opt_mg.step()
        w_t.grad = torch.tensor(gradient(w_t.detach().numpy()))
        opt_t.step()
        out_mg.append(w_mg.numpy())
        out_t.append(w_t.detach().numpy().copy())
    return np.array(out_mg), np.array(out_t)


def test_with_a_constant_lr_it_is_pytorchs_trajectory():
    ours, theirs = _trajectories([0.05] * 20)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)


def test_after_an_lr_change_it_differs_from_pytorch_as_the_docstring_says():
    ours, theirs = _trajectories([0.05] * 10 + [0.005])
    np.testing.assert_allclose(ours[:11], theirs[:11], rtol=1e-12)       # same path while lr = 0.05
    w, v = ours[10], ours[10] - ours[9]                                   # the state at the drop: v = −0.05·b
    g = gradient(w) + 5e-4 * w
    # paper: v ← 0.9·v − 0.005·(g + λw), w ← w + v;   PyTorch: b ← 0.9·b + g + λw, w ← w − 0.005·b = w + 0.09·v − 0.005·(g + λw)
    np.testing.assert_allclose(ours[11], w + 0.9 * v - 0.005 * g, rtol=1e-12)
    np.testing.assert_allclose(theirs[11], w + 0.09 * v - 0.005 * g, rtol=1e-12)


def test_state_dict_resumes_exactly():
    def run(steps, resume_at=None):
        mg.manual_seed(0)
        w = mg.nn.Parameter(np.linspace(-1, 1, 5))
        opt = mg.optim.SGD([w], lr=0.1)
        for step in range(steps):
            if step == resume_at:
                state, data = opt.state_dict(), w.numpy()
                w = mg.nn.Parameter(data)
                opt = mg.optim.SGD([w], lr=1.0)
                opt.load_state_dict(state)
            w.grad = mg.tensor(np.sin(w.numpy()) + step)
            opt.step()
        return w.numpy()
    np.testing.assert_array_equal(run(6), run(6, resume_at=3))


def test_sgd_skips_parameters_without_gradients_and_checks_its_settings():
    w = mg.nn.Parameter(np.ones(2))
    mg.optim.SGD([w], lr=0.1).step()
    np.testing.assert_array_equal(w.numpy(), [1.0, 1.0])
    with pytest.raises(ValueError, match="SGD: need lr > 0"):
        mg.optim.SGD([w], lr=-1)
    with pytest.raises(ValueError, match="SGD: got no parameters"):
        mg.optim.SGD([], lr=0.1)


def test_step_lr():
    opt = mg.optim.SGD([mg.nn.Parameter(np.ones(1))], lr=1.0)
    schedule = mg.optim.StepLR(opt, step_size=2, gamma=0.1)
    lrs = []
    for _ in range(5):
        schedule.step()
        lrs.append(opt.lr)
    np.testing.assert_allclose(lrs, [1.0, 0.1, 0.1, 0.01, 0.01])


def test_reduce_on_plateau_divides_by_10_after_patience_evaluations_without_improvement():
    opt = mg.optim.SGD([mg.nn.Parameter(np.ones(1))], lr=0.01)
    schedule = mg.optim.ReduceLROnPlateau(opt, factor=0.1, patience=2, threshold=0.01)
    errors = [0.9, 0.8, 0.795, 0.80, 0.81, 0.7, 0.7, 0.7, 0.7]
    # 0.795 is not 1% better than 0.8: no improvement; the third such evaluation in a row lowers lr.
    lowered = [schedule.step(e) for e in errors]
    assert lowered == [False, False, False, False, True, False, False, False, True]
    assert opt.lr == pytest.approx(1e-4) and schedule.reductions == 2
    restored = mg.optim.ReduceLROnPlateau(opt, patience=2)
    restored.load_state_dict(schedule.state_dict())
    assert (restored.best, restored.bad_epochs, restored.reductions) == (0.7, 0, 2)
