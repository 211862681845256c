"""Data parallelism on the CPU's cores: one model, several processes, each a shard of every batch.

Inside one process, NumPy runs an element-wise op on one core; the CPU backend hands parts of the
larger ones to a thread per core, but each hand-out costs a wake-up (70-130 µs measured) and Python's
lock changes hands at every call, so small arrays stay on one core.  Processes share no lock.  Here each
process runs the whole step on its own shard of the batch, on one core, and the processes meet twice a
step: the parameters live in shared memory, so every process reads the current weights without a copy;
after backward each worker writes its gradients to shared memory, and this process adds them up.
With L_k the mean loss over shard k (n_k of the batch's N images):

    L      = Σ_k (n_k / N) · L_k          (the mean loss over the whole batch)
    ∂L/∂w  = Σ_k (n_k / N) · ∂L_k/∂w      (so each shard's backward starts from n_k / N, not 1)

Shard 0 runs in this process; shards 1… in worker processes started once, with a copy of the model.
Dropout draws its masks per shard, from (seed, shard), so a run with P processes is reproducible but
not the same run as with one.  Measured on 2 cores, the CPU preset of AlexNet at batch 64: one process
with threads 45-48 ms a step, two processes 35-38 ms (benchmarks/bench_cpu.py --preset cpu).
"""
from __future__ import annotations

import contextlib
import multiprocessing
import signal
import traceback
from multiprocessing import shared_memory

import numpy as np

from .backend import cpu, manual_seed
from .function import no_grad
from .functional import cross_entropy
from .tensor import Tensor, tensor


class DataParallel:
    """Run ``model``'s training step (forward, ``loss``, backward) and its predictions split over
    ``processes`` processes, one core each (default: one per core).  ``processes=1`` runs everything in
    this process, on whatever device the model is on.

        parallel = DataParallel(model)
        optimizer.zero_grad()
        loss, logits = parallel.loss_and_gradients(images, labels, seed=step)
        optimizer.step()

    While it is open the model's parameters live in shared memory (it puts them back on ``close()``) and
    this process's primitives and BLAS run on one core.  Use it as a context manager, or call close().
    The model is sent to the workers with pickle once, at the start: a model with lambdas among its hooks
    cannot be.
    """

    def __init__(self, model, processes: int | None = None, loss=cross_entropy):
        self._workers, self._memory, self._inputs, self._settings = [], None, None, contextlib.ExitStack()
        processes = cpu.CORES if processes is None else processes
        if int(processes) != processes or processes < 1:
            raise ValueError(f"DataParallel: processes must be a whole number ≥ 1, got {processes!r}")
        self.model, self.loss, self.processes = model, loss, int(processes)
        self.parameters = list(model.parameters())
        self.device = self.parameters[0].device if self.parameters else "cpu"
        if self.processes > 1:
            devices = {str(p.device) for p in self.parameters}
            if devices != {"cpu"}:
                raise ValueError(f"DataParallel: processes > 1 needs a model on the CPU, got parameters on "
                                 f"{', '.join(sorted(devices))}; use processes=1 on a GPU")
            self._start()

    # ----- the two things it does ------------------------------------------------------------------
    def loss_and_gradients(self, images: np.ndarray, labels: np.ndarray, seed: int | None = None, meanwhile=None):
        """Forward, loss and backward over the batch, a shard per process.  Adds ∂L/∂w of the batch's mean
        loss into each parameter's ``.grad``, as ``loss.backward()`` would.  Before its forward, shard k
        seeds minigrad's generators (dropout's masks) from (seed, k); seed=None leaves them as they are.
        ``meanwhile()``, if given, is called once the workers have their shards, before this process's own
        (for work that can overlap theirs, such as loading the next batch); with one process, not at all.

        Returns (the batch's mean loss as a float, the logits as a NumPy array).
        """
        labels = np.asarray(labels)
        if len(labels) != len(images) or not len(images):
            raise ValueError(f"DataParallel: {len(images)} images but {len(labels)} labels (need as many, at least one)")
        shards = self._shards(len(images))
        weights = [(stop - start) / len(images) for start, stop in shards]
        seeds = [None if seed is None else _shard_seed(seed, k) for k in range(len(shards))]
        replies = self._run("train", images, shards, [(labels[start:stop], seeds[k], weights[k])
                                                      for k, (start, stop) in enumerate(shards)], meanwhile)
        for k, (_, _, has_gradient) in enumerate(replies[1:], start=1):
            self._add_gradients(k, has_gradient)
        loss = sum(weight * reply[0] for weight, reply in zip(weights, replies))
        return float(loss), np.concatenate([reply[1] for reply in replies])

    def predict(self, images: np.ndarray) -> np.ndarray:
        """The model's outputs for ``images`` (a NumPy array, batch first) with no graph, in the model's
        current mode (``model.eval()`` for evaluation), as a NumPy array."""
        shards = self._shards(len(images))
        return np.concatenate(self._run("predict", images, shards, [()] * len(shards)))

    # ----- life cycle --------------------------------------------------------------------------------
    def close(self) -> None:
        """End the workers and give the parameters back their own memory (again usable after the
        shared memory is gone).  Safe to call twice."""
        for process, connection in self._workers:
            with contextlib.suppress(OSError):
                connection.send(None)
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()
            connection.close()
        self._workers = []
        if self._memory is not None:
            for parameter, shared in zip(self.parameters, self._weights):
                if parameter.data is shared:
                    parameter.data = shared.copy()
            self._weights = self._gradients = None
            for memory in (self._memory, self._inputs):
                if memory is not None:
                    memory.close()
                    memory.unlink()
            self._memory = self._inputs = None
        self._settings.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()

    # ----- the parts ---------------------------------------------------------------------------------
    def _start(self) -> None:
        """Put the parameters in shared memory, with one gradient area per worker, and start the workers."""
        sizes = [p.data.nbytes for p in self.parameters]
        self._memory = shared_memory.SharedMemory(create=True, size=max(1, sum(sizes) * self.processes))
        self._weights = _views(self._memory, self.parameters, 0)
        self._gradients = [None] + [_views(self._memory, self.parameters, k * sum(sizes))
                                    for k in range(1, self.processes)]
        self._share_parameters()
        self._settings.enter_context(cpu.cores(1))
        context = multiprocessing.get_context("spawn")   # a fresh interpreter: forking a process with threads is unsafe
        try:
            for k in range(1, self.processes):
                ours, theirs = context.Pipe()
                process = context.Process(target=_serve, args=(theirs, self.model, self.loss, self._memory.name, k),
                                          name=f"minigrad-shard-{k}", daemon=True)
                try:
                    process.start()
                except Exception as err:
                    raise RuntimeError(f"DataParallel: could not start worker process {k} with a copy of the "
                                       f"model ({type(err).__name__}: {err})") from err
                theirs.close()
                self._workers.append((process, ours))
            for k in range(1, self.processes):     # each says it is ready, so a worker that cannot start fails here
                ok, error = self._reply(k)
                if not ok:
                    raise RuntimeError(f"DataParallel: worker process {k} could not start:\n{error}")
        except BaseException:
            self.close()
            raise

    def _shards(self, n: int) -> list:
        """(start, stop) of each shard: the batch cut into ``processes`` nearly equal parts, empty ones left out."""
        bounds = [n * k // self.processes for k in range(self.processes + 1)]
        return [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a] or [(0, 0)]

    def _run(self, task: str, images, shards, arguments, meanwhile=None) -> list:
        """Hand shards 1… to the workers, call ``meanwhile``, run shard 0 here, then collect the workers'
        replies in order."""
        images = np.asarray(images)
        if len(shards) > 1:
            self._share_parameters()
            inputs = self._shared_inputs(images[shards[1][0]:])
        sent = []
        try:
            for k in range(1, len(shards)):
                start, stop = shards[k]
                view = (start - shards[1][0], stop - shards[1][0])
                self._send(k, (task, self._inputs.name, inputs.shape, inputs.dtype.str, view, self.model.training,
                               *arguments[k]))
                sent.append(k)
            if sent and meanwhile is not None:
                meanwhile()
            start, stop = shards[0]
            replies = [_SHARD_TASKS[task](self.model, self.loss, self.device, images[start:stop], *arguments[0])]
        finally:
            answers = [self._reply(k) for k in sent]     # always, so that no reply is left in a pipe
        for k, (ok, value) in zip(sent, answers):
            if not ok:
                start, stop = shards[k]
                raise RuntimeError(f"DataParallel: worker process {k} failed on images {start}–{stop - 1} of the "
                                   f"batch:\n{value}")
        return replies + [value for ok, value in answers]

    def _send(self, k: int, request) -> None:
        try:
            self._workers[k - 1][1].send(request)
        except OSError:
            self._ended(k)

    def _reply(self, k: int):
        try:
            return self._workers[k - 1][1].recv()
        except (EOFError, OSError):
            self._ended(k)

    def _ended(self, k: int):
        process = self._workers[k - 1][0]
        process.join(timeout=1)
        raise RuntimeError(f"DataParallel: worker process {k} ended unexpectedly (exit code {process.exitcode}); "
                           f"the parameters here are intact, close() and start again") from None

    def _share_parameters(self) -> None:
        """Point every parameter at its place in shared memory, copying it there if it is elsewhere
        (load_state_dict, for one, gives parameters new arrays)."""
        for parameter, shared in zip(self.parameters, self._weights):
            if parameter.data is shared:
                continue
            if parameter.data.shape != shared.shape or parameter.data.dtype != shared.dtype:
                raise ValueError(f"DataParallel: a parameter changed from {shared.shape} {shared.dtype} to "
                                 f"{parameter.data.shape} {parameter.data.dtype} after the workers started")
            shared[...] = parameter.data
            parameter.data = shared

    def _shared_inputs(self, images: np.ndarray) -> np.ndarray:
        """The workers' images in shared memory (grown when a batch does not fit)."""
        if self._inputs is None or self._inputs.size < images.nbytes:
            if self._inputs is not None:
                self._inputs.close()
                self._inputs.unlink()
            self._inputs = shared_memory.SharedMemory(create=True, size=max(1, images.nbytes))
        shared = np.ndarray(images.shape, images.dtype, buffer=self._inputs.buf)
        shared[...] = images
        return shared

    def _add_gradients(self, k: int, has_gradient: list) -> None:
        """Add worker k's gradients (in shared memory) into the parameters' ``.grad``."""
        for parameter, gradient, present in zip(self.parameters, self._gradients[k], has_gradient):
            if not present:
                continue
            if parameter.grad is None:
                parameter.grad = Tensor(gradient.copy())
            else:
                parameter.grad.data += gradient


def _shard_seed(seed: int, shard: int) -> int:
    """Shard 0 keeps ``seed`` (one process runs as without DataParallel); the others get seeds drawn from (seed, k)."""
    return seed if shard == 0 else int(np.random.SeedSequence([seed, shard]).generate_state(1, np.uint64)[0])


def _train_shard(model, loss, device, images, labels, seed, weight):
    """One shard's step: what a one-process training step does, with backward started from the shard's
    share of the batch (``weight`` = n_k / N).  Returns (its mean loss, its logits)."""
    if seed is not None:
        manual_seed(seed)
    logits = model(tensor(images, device=device))
    value = loss(logits, labels)
    value.backward(np.asarray(weight, dtype=value.dtype))
    return value.item(), logits.numpy()


def _predict_shard(model, loss, device, images):
    with no_grad():
        return model(tensor(images, device=device)).numpy()


_SHARD_TASKS = {"train": _train_shard, "predict": _predict_shard}


def _views(memory, parameters, offset: int) -> list:
    """Arrays shaped like ``parameters``, one after the other in ``memory`` from ``offset``."""
    views = []
    for p in parameters:
        views.append(np.ndarray(p.shape, p.dtype, buffer=memory.buf, offset=offset))
        offset += p.data.nbytes
    return views


def _serve(connection, model, loss, memory_name: str, k: int) -> None:
    """A worker process: take requests (a task and where its shard is) until None, reply to each."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)     # Ctrl-C is the main process's to handle
    try:
        memory = shared_memory.SharedMemory(name=memory_name)
        parameters = list(model.parameters())
        size = sum(p.data.nbytes for p in parameters)
        for parameter, shared in zip(parameters, _views(memory, parameters, 0)):
            parameter.data = shared            # reads the weights this step's optimizer left
        gradients = _views(memory, parameters, k * size)
    except Exception:
        connection.send((False, traceback.format_exc()))
        return
    connection.send((True, None))
    inputs = None
    with cpu.cores(1):
        while (request := connection.recv()) is not None:
            task, inputs_name, shape, dtype, (start, stop), training, *arguments = request
            try:
                if inputs is None or inputs.name != inputs_name:
                    inputs = shared_memory.SharedMemory(name=inputs_name)
                images = np.ndarray(shape, dtype, buffer=inputs.buf)[start:stop]
                model.train(training)
                for parameter in parameters:
                    parameter.grad = None
                value = _SHARD_TASKS[task](model, loss, "cpu", images, *arguments)
                if task == "train":
                    for parameter, gradient in zip(parameters, gradients):
                        if parameter.grad is not None:
                            gradient[...] = parameter.grad.data
                    value = (*value, [p.grad is not None for p in parameters])
                reply = (True, value)
            except Exception:
                reply = (False, traceback.format_exc())
            connection.send(reply)
