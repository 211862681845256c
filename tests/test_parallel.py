"""minigrad.parallel: the batch split over processes gives the one-process step's loss, logits and gradients.

The oracle is the plain step in this process (forward, loss, backward on the whole batch), which shares
no code with the sharding, the weighting by n_k / N, the shared memory or the summing of gradients.
"""
import os
import signal

import numpy as np
import pytest

import minigrad as mg
import minigrad.functional as F
from minigrad import nn
from minigrad.parallel import DataParallel


def small_net(dropout=0.0):
    """Conv, ReLU, overlapping max-pool, LRN, (dropout), linear: float64, with a bias-free layer too."""
    mg.manual_seed(3)
    layers = [nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2), nn.LocalResponseNorm(3),
              nn.Flatten(), nn.Linear(4 * 3 * 3, 6, bias=False)]
    if dropout:
        layers.insert(5, nn.Dropout(dropout))
    return nn.Sequential(*layers).to(dtype=mg.float64)


def batch(n, seed=0, classes=6):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 3, 7, 7)), rng.integers(0, classes, n)


def plain_step(model, images, labels, seed=None):
    """The one-process step the sharded one must equal."""
    if seed is not None:
        mg.manual_seed(seed)
    logits = model(mg.tensor(images))
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    return loss.item(), logits.numpy()


def gradients(model):
    return [None if p.grad is None else p.grad.numpy().copy() for p in model.parameters()]


@pytest.mark.parametrize("processes, n", [(2, 7), (3, 8), (3, 2), (2, 1)])
def test_sharded_loss_logits_and_gradients_equal_the_whole_batch(processes, n):
    """Uneven shards (7 = 3 + 4), three processes, and batches smaller than the processes (empty shards)."""
    model = small_net()
    images, labels = batch(n)
    loss, logits = plain_step(model, images, labels)
    expected = gradients(model)
    model.zero_grad()
    with DataParallel(model, processes) as parallel:
        sharded_loss, sharded_logits = parallel.loss_and_gradients(images, labels)
        np.testing.assert_allclose(sharded_loss, loss, rtol=1e-12)
        np.testing.assert_allclose(sharded_logits, logits, rtol=1e-12, atol=1e-14)
        for got, want in zip(gradients(model), expected):
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(parallel.predict(images), logits, rtol=1e-12, atol=1e-14)


def test_training_with_two_processes_follows_the_one_process_trajectory():
    """Three SGD steps: each worker must read the weights the optimizer just wrote (shared memory)."""
    images, labels = batch(10, seed=1)
    models = [small_net(), small_net()]
    optimizers = [mg.optim.SGD(m.parameters(), 0.1) for m in models]
    with DataParallel(models[1], 2) as parallel:
        for step in range(3):
            for m, optimizer in zip(models, optimizers):
                optimizer.zero_grad()
            plain_step(models[0], images, labels)
            parallel.loss_and_gradients(images, labels)
            for optimizer in optimizers:
                optimizer.step()
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-10)
    assert all(p.data.flags.owndata for p in models[1].parameters()), "close() gives parameters their own memory"


def test_gradients_add_into_grad_as_backward_does():
    model = small_net()
    images, labels = batch(6)
    plain_step(model, images, labels)
    once = gradients(model)
    model.zero_grad()
    with DataParallel(model, 2) as parallel:
        parallel.loss_and_gradients(images, labels)
        parallel.loss_and_gradients(images, labels)
    for got, want in zip(gradients(model), once):
        np.testing.assert_allclose(got, 2 * want, rtol=1e-10)


def test_weights_loaded_after_the_start_reach_the_workers():
    model, other = small_net(), small_net()
    for p in other.parameters():
        p.data = p.data * 0.5 + 0.1
    images, labels = batch(6)
    with DataParallel(model, 2) as parallel:
        parallel.predict(images)
        model.load_state_dict(other.state_dict())     # new arrays: no longer in shared memory
        np.testing.assert_allclose(parallel.predict(images), other(mg.tensor(images)).numpy(), rtol=1e-12)


def test_dropout_masks_come_from_the_seed_and_the_shard():
    """One process reproduces the plain step seeded with ``seed`` bit for bit; with two, the same seed gives
    the same step again, and shard 1's masks differ from shard 0's."""
    images, labels = batch(8)
    model = small_net(dropout=0.5)
    expected = plain_step(model, images, labels, seed=11)
    model.zero_grad()
    loss, logits = DataParallel(model, 1).loss_and_gradients(images, labels, seed=11)
    assert loss == expected[0] and np.array_equal(logits, expected[1])
    twice = np.concatenate([images[:4], images[:4]])    # the same four images in both shards
    with DataParallel(model, 2) as parallel:
        first = parallel.loss_and_gradients(twice, labels, seed=5)
        again = parallel.loss_and_gradients(twice, labels, seed=5)
    assert first[0] == again[0] and np.array_equal(first[1], again[1])
    assert not np.array_equal(first[1][:4], first[1][4:]), "shard 1 drew shard 0's masks"


def test_meanwhile_runs_once_while_the_workers_compute():
    """With workers, ``meanwhile`` runs once each step, after the workers were sent their shards; with one
    process, never (nothing would overlap it)."""
    images, labels = batch(6)
    calls = []
    model = small_net()
    DataParallel(model, 1).loss_and_gradients(images, labels, meanwhile=lambda: calls.append("here"))
    assert calls == []
    with DataParallel(model, 2) as parallel:
        def meanwhile():
            calls.append(parallel._workers[0][1].poll(5))    # the worker's reply arrives: it had its shard already
        parallel.loss_and_gradients(images, labels, meanwhile=meanwhile)
        parallel.loss_and_gradients(images, labels, meanwhile=meanwhile)
    assert calls == [True, True]


def test_evaluation_mode_reaches_the_workers():
    model = small_net(dropout=0.9)
    images, _ = batch(6)
    model.eval()
    with mg.no_grad():
        expected = model(mg.tensor(images)).numpy()
    with DataParallel(model, 2) as parallel:
        np.testing.assert_allclose(parallel.predict(images), expected, rtol=1e-12)


def test_bad_arguments_are_named():
    model = small_net()
    with pytest.raises(ValueError, match=r"DataParallel: processes must be a whole number ≥ 1, got 0"):
        DataParallel(model, 0)
    images, labels = batch(4)
    with pytest.raises(ValueError, match=r"DataParallel: 4 images but 3 labels \(need as many, at least one\)"):
        DataParallel(model, 1).loss_and_gradients(images, labels[:3])
    with pytest.raises(ValueError, match=r"DataParallel: 0 images but 0 labels"):
        DataParallel(model, 1).loss_and_gradients(images[:0], labels[:0])


def test_an_error_in_a_worker_names_the_process_and_its_images_and_the_next_step_works():
    model = small_net()
    images, labels = batch(4)
    bad = labels.copy()
    bad[3] = 99                                   # only in shard 1 (images 2-3)
    with DataParallel(model, 2) as parallel:
        with pytest.raises(RuntimeError, match=r"(?s)DataParallel: worker process 1 failed on images 2–3 of the "
                                               r"batch:.*cross_entropy: targets must lie in \[0, 6\)"):
            parallel.loss_and_gradients(images, bad)
        bad = labels.copy()
        bad[0] = 99                               # in this process's shard: the op's own error
        with pytest.raises(ValueError, match=r"cross_entropy: targets must lie in \[0, 6\)"):
            parallel.loss_and_gradients(images, bad)
        model.zero_grad()
        parallel.loss_and_gradients(images, labels)   # no reply was left behind in the pipe
    model_gradients = gradients(model)
    model.zero_grad()
    plain_step(model, images, labels)
    for got, want in zip(model_gradients, gradients(model)):
        np.testing.assert_allclose(got, want, rtol=1e-10)


def test_a_worker_that_dies_is_a_clear_error_and_the_weights_survive():
    model = small_net()
    before = [p.numpy().copy() for p in model.parameters()]
    images, labels = batch(4)
    parallel = DataParallel(model, 2)
    os.kill(parallel._workers[0][0].pid, signal.SIGKILL)
    for _ in range(2):          # (the second time, the request cannot even be sent)
        with pytest.raises(RuntimeError, match=r"DataParallel: worker process 1 ended unexpectedly \(exit code -9\)"):
            parallel.loss_and_gradients(images, labels)
    parallel.close()
    for p, b in zip(model.parameters(), before):
        assert p.data.flags.owndata and np.array_equal(p.numpy(), b)


def test_a_model_that_cannot_be_sent_to_a_worker_is_a_clear_error():
    model = small_net()
    model.register_forward_hook(lambda module, inputs, output: None)    # a lambda does not pickle
    with pytest.raises(RuntimeError, match=r"DataParallel: could not start worker process 1 with a copy of the model"):
        DataParallel(model, 2)
    assert all(p.data.flags.owndata for p in model.parameters())


def test_arrays_that_view_the_parameters_outlive_close():
    """A state_dict or a parameter's array taken while it is open still reads the weights after close()
    (in a child process: were the memory unmapped, reading it would crash the interpreter)."""
    import subprocess
    import sys
    script = (
        "import numpy as np, minigrad as mg\n"
        "from minigrad import nn\n"
        "from minigrad.parallel import DataParallel\n"
        "if __name__ == '__main__':\n"
        "    model = nn.Sequential(nn.Linear(3, 2))\n"
        "    with DataParallel(model, 2) as parallel:\n"
        "        parallel.predict(np.ones((4, 3), np.float32))\n"
        "        kept = [p.data for p in model.parameters()] + [t.data for t in model.state_dict().values()]\n"
        "    copies = [p.numpy() for p in model.parameters()]\n"
        "    print(all(np.array_equal(a, copies[i % 2]) for i, a in enumerate(kept)))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert (done.returncode, done.stdout.strip()) == (0, "True"), done.stderr


def test_a_call_interrupted_while_it_waits_refuses_the_next_one(monkeypatch):
    """Ctrl-C while this process waits for a worker's reply (perhaps half-way through reading it): the pipe may
    be out of step, so the next call says so instead of reading the late reply as its own; a new one works."""
    import minigrad.parallel as parallel_module
    model = small_net()
    images, labels = batch(6)
    with DataParallel(model, 2) as parallel:
        def interrupted(connection):
            monkeypatch.undo()
            raise KeyboardInterrupt
        monkeypatch.setattr(parallel_module, "_recv", interrupted)
        with pytest.raises(KeyboardInterrupt):
            parallel.loss_and_gradients(images * 3, labels)
        with pytest.raises(RuntimeError, match=r"DataParallel: a call was interrupted \(KeyboardInterrupt\) while it "
                                               r"talked to worker process 1; close\(\) it and start a new one"):
            parallel.loss_and_gradients(images, labels)
    model.zero_grad()
    with DataParallel(model, 2) as parallel:
        loss, logits = parallel.loss_and_gradients(images, labels)
    sharded = gradients(model)
    model.zero_grad()
    expected = plain_step(model, images, labels)
    np.testing.assert_allclose(loss, expected[0], rtol=1e-12)
    np.testing.assert_allclose(logits, expected[1], rtol=1e-12)
    for got, want in zip(sharded, gradients(model)):
        np.testing.assert_allclose(got, want, rtol=1e-10)


def test_nothing_is_left_in_shared_memory():
    """The files are deleted as soon as they are made (the processes pass descriptors): none is ever listed."""
    folder = "/dev/shm" if os.path.isdir("/dev/shm") else None
    if folder is None:
        pytest.skip("no /dev/shm here")
    before = {name for name in os.listdir(folder) if name.startswith("minigrad-")}
    model = small_net()
    with DataParallel(model, 2) as parallel:
        for n in (4, 9, 30):                      # growing batches: new memory for the images each time
            parallel.predict(batch(n)[0])
            assert {name for name in os.listdir(folder) if name.startswith("minigrad-")} == before
    assert {name for name in os.listdir(folder) if name.startswith("minigrad-")} == before


def test_no_room_for_shared_memory_is_a_clear_error(monkeypatch):
    def full(descriptor, offset, length):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "posix_fallocate", full, raising=False)
    monkeypatch.setattr(os, "ftruncate", full)
    with pytest.raises(RuntimeError, match=r"DataParallel: cannot reserve 0\.0 MiB of shared memory in \S+ \(not "
                                           r"enough room\); use fewer processes, or give \S+ more room"):
        DataParallel(small_net(), 2)


def test_a_model_changed_after_the_start_is_refused():
    model = small_net()
    images, labels = batch(4)
    with DataParallel(model, 2) as parallel:
        next(model.parameters()).requires_grad = False       # the worker's copy would still compute its gradient
        with pytest.raises(ValueError, match=r"DataParallel: the model's parameters changed after the workers "
                                             r"started \(added, replaced, or requires_grad changed\)"):
            parallel.loss_and_gradients(images, labels)
    with pytest.raises(RuntimeError, match=r"DataParallel: used after close\(\)"):
        parallel.predict(images)


def test_this_process_runs_on_one_core_only_during_a_call_and_meanwhile_comes_first():
    from minigrad.backend import cpu
    cores, order = cpu.CORES, []
    model = small_net()
    images, labels = batch(4)
    with DataParallel(model, 2) as parallel:
        assert cpu.CORES == cores
        model.register_forward_hook(lambda module, inputs, output: order.append(("shard", cpu.CORES)))
        parallel.loss_and_gradients(images, labels, meanwhile=lambda: order.append(("meanwhile", cpu.CORES)))
        assert cpu.CORES == cores
    assert order == [("meanwhile", 1), ("shard", 1)]
