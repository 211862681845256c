"""Batches for training and evaluation: preprocessing in worker processes, prefetched, deterministic.

Determinism: the order of an epoch comes from (seed, epoch) and each image's random crop, flip and
colour noise from (seed, epoch, image index), so a run gives the same batches whatever the number of
workers, and a resumed run continues exactly where it stopped.
"""
from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
import signal
import warnings
from collections import deque
from dataclasses import dataclass

import numpy as np

from ..backend import cpu
from . import transforms as T
from .folder import UnreadableImage


MODES = ("train", "eval", "ten-crop")


@dataclass
class Preprocess:
    """The per-image pipeline (see transforms.py).  mode: "train", "eval" (centre crop) or "ten-crop".

    mean: 3 values, per channel, or (S, S, 3) per pixel (then every image is S×S), in [0, 1] units; std: 3
    values; pca: (eigenvalues, eigenvectors) of the RGB covariance, or None for no colour noise.
    """

    crop: int
    mean: np.ndarray
    std: np.ndarray
    mode: str = "train"
    pca: tuple | None = None
    flip: bool = True

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"Preprocess: mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        self.mean, self.std = np.asarray(self.mean), np.asarray(self.std)
        if self.mean.size == 3:
            self.mean = self.mean.reshape(3)
        elif self.mean.ndim != 3 or self.mean.shape[2] != 3:
            raise ValueError(f"Preprocess: mean must be 3 values (per channel) or (S, S, 3) (per pixel), "
                             f"got shape {self.mean.shape}")
        if self.std.size != 3:
            raise ValueError(f"Preprocess: std must be 3 values (per channel), got shape {self.std.shape}")
        self.std = self.std.reshape(3)

    def __call__(self, image: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        """One (H, W, 3) uint8 image -> (3, crop, crop) float32, or (10, 3, crop, crop) for ten-crop."""
        return self.batch([image], [rng])[0]

    def batch(self, images: list, rngs: list) -> np.ndarray:
        """A list of (H, W, 3) uint8 images -> (B, 3, crop, crop) float32 ((B, 10, 3, crop, crop) for ten-crop).

        Per image only its random choices, from its own rng in a fixed order (window, flip, colour noise),
        and the crops of its uint8 pixels; the arithmetic then runs once over all the crops, channels first.
        (Image by image, channels last, it took 8.7 ms a batch of 64 at the CPU preset's 67×67 crops.)
        """
        per_image = 10 if self.mode == "ten-crop" else 1
        per_pixel_mean = self.mean.ndim == 3
        crops = np.empty((len(images) * per_image, self.crop, self.crop, 3), np.uint8)
        means = np.empty(crops.shape, self.mean.dtype) if per_pixel_mean else None
        colour = self.mode == "train" and self.pca is not None
        shifts = np.zeros((len(crops), 3, 1, 1), np.result_type(np.float32, *self.pca)) if colour else None
        mirrored = np.zeros(len(crops), bool)
        for k, (image, rng) in enumerate(zip(images, rngs)):
            if per_pixel_mean and image.shape[:2] != self.mean.shape[:2]:
                raise ValueError(f"Preprocess: an image is {image.shape[0]}×{image.shape[1]}, the per-pixel mean "
                                 f"{self.mean.shape[0]}×{self.mean.shape[1]}: they must be the same size")
            for c, (window, mirrored[c]) in enumerate(self._windows(*image.shape[:2], rng), start=k * per_image):
                crops[c] = T.crop(image, window)
                if per_pixel_mean:      # the same window of the mean image
                    means[c] = T.crop(self.mean, window)
            if colour:
                shifts[k] = T.pca_colour_shift(*self.pca, rng)[:, None, None]
        # channels first, where NumPy's per-channel loops run over rows of H·W values (over rows of 3 in HWC)
        pixels = T.to_unit_float(cpu.transposed_copy(crops, (0, 3, 1, 2)))
        pixels = pixels - (cpu.transposed_copy(means, (0, 3, 1, 2)) if per_pixel_mean else self.mean[:, None, None])
        if colour:
            pixels = pixels + shifts    # (not in place: a float64 shift makes the pixels float64, as a float64 mean does)
        pixels /= self.std[:, None, None]
        # Mirrored last: every step above is per pixel, so the order does not change a bit, and here a row is W
        # values to reverse, where a crop's is 3 (a mirrored uint8 crop took 20 µs to copy, an unmirrored one 1).
        pixels[mirrored] = pixels[mirrored][..., ::-1]
        shape = (len(images), per_image) if per_image > 1 else (len(images),)
        return pixels.astype(np.float32, copy=False).reshape(*shape, 3, self.crop, self.crop)

    def _windows(self, height: int, width: int, rng) -> list:
        """(window, mirrored) of each crop an image gives: a random one (maybe mirrored), the centre, or ten."""
        if self.mode == "train":
            window = T.random_window(height, width, self.crop, rng)
            return [(window, self.flip and rng.random() < 0.5)]
        if self.mode == "eval":
            return [(T.center_window(height, width, self.crop), False)]
        return T.ten_windows(height, width, self.crop)


@dataclass
class Batch:
    images: np.ndarray      # (B, 3, crop, crop) float32, or (B, 10, 3, crop, crop) for ten-crop
    labels: np.ndarray      # (B,) int64
    indices: np.ndarray     # which images of the source
    unreadable: list        # (path, reason) of images of this batch that were skipped


class Lookahead:
    """An iterator whose next item can be taken early: ``load_next()`` takes it now and keeps it; ``next()``
    then returns it.  The training loop hands ``load_next`` to ``DataParallel.loss_and_gradients``, which
    calls it while the other processes compute their shards: the next batch is then loaded in time that
    this process would otherwise spend waiting (measured on 2 cores, the default run's first 3 epochs, twice:
    1411-1456 and 1519-1600 img/s without, 1573-1591 and 1652-1702 with; the same losses)."""

    _NONE = object()     # no item taken early
    _END = object()      # the iterator is exhausted

    def __init__(self, iterable):
        self._iterator, self._next = iter(iterable), Lookahead._NONE

    def load_next(self) -> None:
        if self._next is Lookahead._NONE:
            self._next = next(self._iterator, Lookahead._END)

    def __iter__(self):
        return self

    def __next__(self):
        self.load_next()
        item, self._next = self._next, Lookahead._NONE
        if item is Lookahead._END:
            raise StopIteration
        return item


# Worker processes keep the source and the pipeline in a global, sent once when they start.
_worker_state: dict = {}


def _start_worker(source, preprocess):
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C is the main process's to handle
    _worker_state.update(source=source, preprocess=preprocess)


def _load_batch(indices, seeds, source=None, preprocess=None) -> Batch:
    if source is None:                     # in a worker process: what _start_worker was given
        source, preprocess = _worker_state["source"], _worker_state["preprocess"]
    images, rngs, kept, unreadable = [], [], [], []
    for index, seed in zip(indices, seeds):
        try:
            images.append(source.load(int(index)))
        except UnreadableImage as err:
            unreadable.append((err.path, err.reason))
            continue
        rngs.append(np.random.default_rng(seed))
        kept.append(index)
    kept = np.array(kept, dtype=np.int64)
    stacked = preprocess.batch(images, rngs) if images else np.zeros((0,), np.float32)
    return Batch(stacked, source.labels[kept], kept, unreadable)


def _load_one(index, source=None):
    source = source or _worker_state["source"]
    try:
        return index, source.load(int(index))
    except UnreadableImage as err:
        return index, err


class DataLoader:
    """Iterate over ``source`` (an ImageFolder or ImageCache) in batches, preprocessing in ``workers`` processes.

    workers=0 loads in this process (simplest to debug).  ``prefetch`` batches are prepared ahead while
    the model trains on the current one.  Unreadable images are skipped with a warning naming the file
    (once per file), counted in ``unreadable``; with strict=True the first one raises instead.
    Use as a context manager, or call close(), so that the worker processes end.
    """

    def __init__(self, source, preprocess: Preprocess, batch_size: int, shuffle: bool = False, seed: int = 0,
                 workers: int = 0, prefetch: int | None = None, strict: bool = False, drop_last: bool = False):
        if batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be ≥ 1, got {batch_size}")
        self.source, self.preprocess, self.batch_size = source, preprocess, batch_size
        self.shuffle, self.seed, self.workers, self.strict, self.drop_last = shuffle, seed, workers, strict, drop_last
        self.prefetch = prefetch if prefetch is not None else max(2, 2 * workers)
        self.unreadable: dict[str, str] = {}      # every skipped file seen so far -> why
        self._pool = None

    def __len__(self) -> int:
        n = len(self.source)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _ensure_pool(self):
        if self._pool is None and self.workers > 0:
            # "spawn": a fresh interpreter per worker.  Forking a process that has a CUDA context is unsafe.
            context = multiprocessing.get_context("spawn")
            # (not multiprocessing.Pool: its terminate() can deadlock with its own task thread; it hung CI once)
            self._pool = ProcessPoolExecutor(self.workers, mp_context=context, initializer=_start_worker,
                                             initargs=(self.source, self.preprocess))
        return self._pool

    def order(self, epoch: int) -> np.ndarray:
        """The image order of an epoch: a permutation drawn from (seed, epoch), or 0..N−1 without shuffling."""
        n = len(self.source)
        return np.random.default_rng([self.seed, epoch]).permutation(n) if self.shuffle else np.arange(n)

    def batches(self, epoch: int = 0, start: int = 0) -> Lookahead:
        """The Batches of ``epoch``, beginning at batch number ``start`` (for resuming mid-epoch), as an
        iterator that can also load its next batch early (``load_next()``)."""
        return Lookahead(self._batches(epoch, start))

    def _batches(self, epoch: int, start: int):
        order = self.order(epoch)
        specs = []
        for b in range(start, len(self)):
            indices = order[b * self.batch_size:(b + 1) * self.batch_size]
            seeds = [[self.seed, epoch, int(i)] for i in indices]
            specs.append((indices, seeds))
        for batch in self._load(specs):
            batch = self._checked(batch)
            if batch is not None:
                yield batch

    def _load(self, specs):
        """Batches in order: here, or by the workers with up to ``prefetch`` batches in flight."""
        pool = self._ensure_pool()
        if pool is None:
            yield from (_load_batch(indices, seeds, self.source, self.preprocess) for indices, seeds in specs)
            return
        pending = deque()
        for spec in specs:
            pending.append(pool.submit(_load_batch, *spec))
            if len(pending) > self.prefetch:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()

    def _checked(self, batch: Batch):
        for path, reason in batch.unreadable:
            if self.strict:
                raise UnreadableImage(path, reason)
            if path not in self.unreadable:
                warnings.warn(f"skipping an unreadable image: {path} ({reason})", stacklevel=4)
                self.unreadable[path] = reason
        return batch if len(batch.labels) else None

    def decoded_images(self):
        """(index, image or UnreadableImage) for every image, in order, decoded by the workers (to build a cache)."""
        pool = self._ensure_pool()
        indices = range(len(self.source))
        if pool is None:
            yield from (_load_one(i, self.source) for i in indices)
        else:
            yield from pool.map(_load_one, indices, chunksize=16)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)     # what runs finishes (a batch); the rest is dropped
            self._pool = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()


def default_workers(device: str) -> int:
    """Loader worker processes for a model trained on ``device``: one per core beside a GPU.

    On the CPU, training already uses every core (threads, or one process per core: minigrad.parallel), so
    workers compete with it: none up to 2 cores (measured on 2: the CPU preset trained in one process at about
    1200–1340 img/s with none, 1030–1160 with 2 workers; in two processes at 1486–1569 with none, 1247–1270 with
    one), half the cores above that (a guess; not measured here).
    """
    cores = cpu.CORES
    if str(device).startswith("cuda"):
        return cores
    return 0 if cores <= 2 else cores // 2


def image_statistics(source, count: int = 1000, seed: int = 0) -> dict:
    """Mean (per channel and per pixel), per-channel std and the RGB PCA of a sample of ``count`` images.

    Values are in [0, 1] units.  The paper uses the mean of the whole training set; a sample of a
    thousand images gives the same numbers to about three decimals, at a tiny fraction of the cost.
    Running sums (in float64) keep the memory to one image whatever the sample size.
    """
    indices = np.random.default_rng(seed).permutation(len(source))[:count]
    images, pixels = 0, 0
    pixel_sum, rgb_sum, rgb_outer = None, np.zeros(3), np.zeros((3, 3))
    for i in indices:
        try:
            image = T.to_unit_float(source.load(int(i))).astype(np.float64)
        except UnreadableImage:
            continue
        pixel_sum = image if pixel_sum is None else pixel_sum + image
        flat = image.reshape(-1, 3)
        rgb_sum += flat.sum(axis=0)
        rgb_outer += flat.T @ flat
        images, pixels = images + 1, pixels + len(flat)
    if not images:
        raise ValueError("image_statistics: none of the sampled images could be read")
    mean = rgb_sum / pixels
    covariance = rgb_outer / pixels - np.outer(mean, mean)
    eigenvalues, eigenvectors = T.pca_of_covariance(covariance)
    return {"mean": mean.astype(np.float32), "pixel_mean": (pixel_sum / images).astype(np.float32),
            "std": np.sqrt(np.diag(covariance)).astype(np.float32), "eigenvalues": eigenvalues,
            "eigenvectors": eigenvectors, "sample_size": images}
