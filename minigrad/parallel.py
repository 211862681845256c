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

The shared memory is a file in /dev/shm (a RAM disk; elsewhere the temporary folder), deleted as soon as
it is made: the processes pass its descriptor along the pipes, and the memory goes when the last array
that maps it does, so nothing is left behind whatever ends the processes.
"""
from __future__ import annotations

import errno
import mmap
import multiprocessing
import os
import signal
import tempfile
import traceback
from multiprocessing.reduction import recv_handle, send_handle

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

    ``loss(logits, labels)`` must be a mean over the examples (the shards are weighted n_k / N).
    With processes > 1:
    - the model and ``loss`` are sent to the workers with pickle once, at the start: they must be
      importable (defined in a module, not typed into a REPL), and hooks must not be lambdas; a script
      needs the ``if __name__ == "__main__":`` guard, since the workers are started with "spawn", which
      imports the main module again;
    - the parameters live in shared memory while it is open (``close()`` gives them their own again);
      the model must not change meanwhile: parameters added, replaced or frozen are refused at every call,
      but hooks and layers' settings are not checked (the workers keep their copies' as they were);
    - during a call this process's primitives and BLAS run on one core.
    Use it as a context manager, or call close().
    """

    def __init__(self, model, processes: int | None = None, loss=cross_entropy):
        self._workers, self._memory, self._inputs, self._closed, self._broken = [], None, None, False, None
        processes = cpu.CORES if processes is None else processes
        if int(processes) != processes or processes < 1:
            raise ValueError(f"DataParallel: processes must be a whole number ≥ 1, got {processes!r}")
        self.model, self.loss, self.processes = model, loss, int(processes)
        self.parameters = list(model.parameters())
        self._structure = _structure(self.parameters)
        if self.processes > 1:
            elsewhere = {str(p.device) for p in self.parameters} - {"cpu"}
            if elsewhere:
                raise ValueError(f"DataParallel: processes > 1 needs a model on the CPU, got parameters on "
                                 f"{', '.join(sorted(elsewhere))}; use processes=1 on a GPU")
            self._start()

    # ----- the two things it does ------------------------------------------------------------------
    def loss_and_gradients(self, images: np.ndarray, labels: np.ndarray, seed: int | None = None, meanwhile=None):
        """Forward, loss and backward over the batch, a shard per process.  Adds ∂L/∂w of the batch's mean
        loss into each parameter's ``.grad``, as ``loss.backward()`` would.  Before its forward, shard k
        seeds minigrad's generators (dropout's masks) from (seed, k); seed=None leaves them as they are.
        ``meanwhile()``, if given, is called once the workers have their shards, before this process's own
        (for work that can overlap theirs, such as loading the next batch); when the batch makes one shard
        (one process, or one image), not at all.  If it raises, ``.grad`` may hold part of the sum: zero it.

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
        """End the workers and give the parameters back their own memory.  Safe to call twice."""
        self._closed = True
        for process, connection in self._workers:
            try:
                connection.send(None)
            except OSError:
                pass
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
            connection.close()
        self._workers = []
        if self._memory is not None:
            for parameter, shared in zip(self.parameters, self._weights):
                if parameter.data is shared:
                    parameter.data = shared.copy()
        # Only dropped: any array still viewing the memory (a state_dict, a saved activation) keeps it alive.
        self._memory = self._weights = self._gradients = self._inputs = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()

    # ----- the parts ---------------------------------------------------------------------------------
    def _start(self) -> None:
        """Put the parameters in shared memory, with one gradient area per worker, and start the workers."""
        size = sum(p.data.nbytes for p in self.parameters)
        descriptor, self._memory = _shared_memory(max(1, size * self.processes))
        try:
            self._weights = _views(self._memory, self.parameters, 0)
            self._gradients = [None] + [_views(self._memory, self.parameters, k * size) for k in range(1, self.processes)]
            self._share_parameters()
            context = multiprocessing.get_context("spawn")   # a fresh interpreter: forking a process with threads is unsafe
            for k in range(1, self.processes):
                ours, theirs = context.Pipe()
                process = context.Process(target=_serve, args=(theirs, self.model, self.loss, k),
                                          name=f"minigrad-shard-{k}", daemon=True)
                try:
                    process.start()
                except Exception as err:
                    raise RuntimeError(f"DataParallel: could not start worker process {k} with a copy of the "
                                       f"model ({type(err).__name__}: {err})") from err
                theirs.close()
                self._workers.append((process, ours))
                self._talk(k, send_handle, ours, descriptor, process.pid)
            for k in range(1, self.processes):     # each says it is ready, so a worker that cannot start fails here
                ok, error = self._talk(k, _recv, self._workers[k - 1][1])
                if not ok:
                    raise RuntimeError(f"DataParallel: worker process {k} could not start:\n{error}")
        except BaseException:
            self.close()
            raise
        finally:
            os.close(descriptor)

    def _shards(self, n: int) -> list:
        """(start, stop) of each shard: the batch cut into ``processes`` nearly equal parts, empty ones left out."""
        bounds = [n * k // self.processes for k in range(self.processes + 1)]
        return [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a] or [(0, 0)]

    def _run(self, task: str, images, shards, arguments, meanwhile=None) -> list:
        """Hand shards 1… to the workers, call ``meanwhile``, run shard 0 here, then collect the workers'
        replies in order."""
        if self._closed or self._broken:
            raise RuntimeError(self._broken or "DataParallel: used after close()")
        if len(shards) == 1:
            device = self.parameters[0].device if self.parameters else "cpu"
            return [_SHARD_TASKS[task](self.model, self.loss, device, images, *arguments[0])]
        self._share_parameters()
        first = shards[1][0]
        descriptor, inputs = self._shared_inputs(np.asarray(images)[first:])
        sent, answers = [], []
        try:
            for k in range(1, len(shards)):
                start, stop = shards[k]
                connection = self._workers[k - 1][1]
                self._talk(k, connection.send, (task, descriptor is not None, inputs.shape, inputs.dtype.str,
                                                (start - first, stop - first), self.model.training, *arguments[k]))
                if descriptor is not None:      # a new file for the images (the first, or a larger batch)
                    self._talk(k, send_handle, connection, descriptor, self._workers[k - 1][0].pid)
                sent.append(k)
            with cpu.cores(1):     # one core here too: the other cores are the workers'
                if meanwhile is not None:
                    meanwhile()
                start, stop = shards[0]
                replies = [_SHARD_TASKS[task](self.model, self.loss, "cpu", images[start:stop], *arguments[0])]
        finally:
            try:
                for k in sent:      # always, so that each worker is idle again
                    answers.append(self._talk(k, _recv, self._workers[k - 1][1]))
            finally:
                if descriptor is not None:
                    os.close(descriptor)
                if len(answers) < len(shards) - 1 or not all(ok for ok, _ in answers):
                    self._inputs = None      # a worker may not have the latest images file: the next call makes another
        for k, (ok, value) in zip(sent, answers):
            if not ok:
                start, stop = shards[k]
                raise RuntimeError(f"DataParallel: worker process {k} failed on images {start}–{stop - 1} of the "
                                   f"batch:\n{value}")
        return replies + [value for ok, value in answers]

    def _talk(self, k: int, action, *arguments):
        """``action(*arguments)``, a send or a receive on worker k's pipe.  A worker that has ended, or an
        interruption (Ctrl-C) half-way, leaves the pipes out of step: then this object refuses further calls."""
        try:
            return action(*arguments)
        except (EOFError, OSError):
            process = self._workers[k - 1][0]
            process.join(timeout=1)
            self._broken = (f"DataParallel: worker process {k} ended unexpectedly (exit code {process.exitcode}); "
                            f"the parameters here are intact, close() it and start a new one")
            raise RuntimeError(self._broken) from None
        except BaseException as err:
            self._broken = self._broken or (f"DataParallel: a call was interrupted ({type(err).__name__}) while it "
                                            f"talked to worker process {k}; close() it and start a new one")
            raise

    def _share_parameters(self) -> None:
        """Point every parameter at its place in shared memory, copying it there if it is elsewhere
        (load_state_dict, for one, gives parameters new arrays); refuse a model whose parameters changed."""
        now = list(self.model.parameters())
        if _structure(now) != self._structure:
            raise ValueError("DataParallel: the model's parameters changed after the workers started (added, "
                             "replaced, or requires_grad changed); the workers' copies would not follow. Close "
                             "it and start a new one")
        for parameter, shared in zip(self.parameters, self._weights):
            if parameter.data is shared:
                continue
            if parameter.data.shape != shared.shape or parameter.data.dtype != shared.dtype:
                raise ValueError(f"DataParallel: a parameter changed from {shared.shape} {shared.dtype} to "
                                 f"{parameter.data.shape} {parameter.data.dtype} after the workers started")
            shared[...] = parameter.data
            parameter.data = shared

    def _shared_inputs(self, images: np.ndarray) -> tuple:
        """(a descriptor or None, the array): the workers' images in shared memory, kept while they fit (then
        the descriptor is None: the workers have the memory), else in new memory, whose descriptor they get."""
        descriptor = None
        if self._inputs is None or self._inputs.nbytes < images.nbytes:
            self._inputs = None
            descriptor, self._inputs = _shared_memory(max(images.nbytes, 1))
        shared = _array_in(self._inputs, images.shape, images.dtype)
        try:
            shared[...] = images
        except BaseException:
            if descriptor is not None:
                os.close(descriptor)
            raise
        return descriptor, shared

    def _add_gradients(self, k: int, has_gradient: list) -> None:
        """Add worker k's gradients (in shared memory) into the parameters' ``.grad``."""
        for parameter, gradient, present in zip(self.parameters, self._gradients[k], has_gradient):
            if not present:
                continue
            if parameter.grad is None:
                parameter.grad = Tensor(gradient.copy())
            else:
                parameter.grad.data += gradient


def _structure(parameters) -> list:
    return [(id(p), p.requires_grad) for p in parameters]


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


def _shared_memory(size: int) -> tuple:
    """(a descriptor, a writable uint8 array of ``size`` bytes mapped from it): a file in /dev/shm (RAM),
    deleted at once, with its pages reserved now, so that a full /dev/shm is this error and not a crash
    (SIGBUS) at the first write."""
    folder = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else tempfile.gettempdir()
    descriptor, path = tempfile.mkstemp(prefix="minigrad-", dir=folder)
    os.unlink(path)
    try:
        try:
            if hasattr(os, "posix_fallocate"):
                os.posix_fallocate(descriptor, 0, size)
            else:
                os.ftruncate(descriptor, size)
        except OSError as err:
            message = "not enough room" if err.errno in (errno.ENOSPC, errno.EFBIG) else err.strerror
            raise RuntimeError(f"DataParallel: cannot reserve {size / 2**20:.1f} MiB of shared memory in {folder} "
                               f"({message}); use fewer processes, or give {folder} more room") from None
        return descriptor, _mapped(descriptor)
    except BaseException:
        os.close(descriptor)
        raise


def _mapped(descriptor: int, writable: bool = True) -> np.ndarray:
    """The whole file behind ``descriptor`` as a uint8 array; the array keeps the mapping alive."""
    return np.frombuffer(mmap.mmap(descriptor, 0, access=mmap.ACCESS_WRITE if writable else mmap.ACCESS_READ),
                         np.uint8)


def _recv(connection):
    return connection.recv()


def _array_in(memory, shape, dtype, offset: int = 0) -> np.ndarray:
    """An array of ``shape`` and ``dtype`` laid over ``memory`` (uint8) from byte ``offset`` on."""
    dtype = np.dtype(dtype)
    return memory[offset:offset + int(np.prod(shape)) * dtype.itemsize].view(dtype).reshape(shape)


def _views(memory, parameters, offset: int) -> list:
    """Arrays shaped like ``parameters``, one after the other in ``memory`` from ``offset``."""
    views = []
    for p in parameters:
        views.append(_array_in(memory, p.shape, p.dtype, offset))
        offset += p.data.nbytes
    return views


def _serve(connection, model, loss, k: int) -> None:
    """A worker process: take requests (a task and where its shard is) until None, reply to each."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)     # Ctrl-C is the main process's to handle
    try:
        descriptor = recv_handle(connection)
        memory = _mapped(descriptor)
        os.close(descriptor)
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
        while True:
            try:
                request = connection.recv()
            except (EOFError, OSError):           # the main process has gone
                return
            if request is None:
                return
            task, new_inputs, shape, dtype, (start, stop), training, *arguments = request
            try:
                if new_inputs:
                    descriptor = recv_handle(connection)
                    inputs = _mapped(descriptor, writable=False)
                    os.close(descriptor)
                images = _array_in(inputs, shape, dtype)[start:stop]
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
