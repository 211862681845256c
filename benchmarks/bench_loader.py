"""Images per second of the data loader alone (no model), with and without the decoded-image cache.

    python benchmarks/bench_loader.py [--images 400] [--save benchmarks/results/loader-cpu.txt]

Two datasets: the built-in one (96×96 JPEGs, the CPU preset's 67-pixel crops from 76×76), and photo-sized
JPEGs (500×375, ImageNet's typical size, generated here) cut the paper's way (shorter side 256, crops
of 227).  For each: decoding every epoch vs reading the cache, with 0, 1 and all-cores worker processes.
The first pass, which builds the cache, is timed separately.
"""
import argparse
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from minigrad.data import DataLoader, ImageCache, ImageFolder, Preprocess, default_workers, make_builtin_dataset  # noqa: E402


def photo_tree(root: Path, count: int) -> Path:
    rng = np.random.default_rng(0)
    for c in range(4):
        (root / f"class{c}").mkdir(parents=True, exist_ok=True)
    for i in range(count):
        # smooth random content (JPEG sizes like a photo's, not like noise's)
        small = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((500, 375), Image.BICUBIC)
        image.save(root / f"class{i % 4}" / f"{i:05d}.jpg", quality=90)
    return root


def images_per_second(source, crop, workers, batch=64) -> float:
    pre = Preprocess(crop, np.full(3, 0.5, np.float32), np.full(3, 0.25, np.float32), "train",
                     (np.ones(3, np.float32) * 0.01, np.eye(3, dtype=np.float32)))
    with DataLoader(source, pre, batch, shuffle=True, workers=workers) as loader:
        for _ in loader.batches(epoch=99):                # a whole warm-up epoch: the workers are started, and none
            pass                                          # of its batches is still being made while we time
        start, count = time.perf_counter(), 0
        for b in loader.batches(epoch=0):
            count += len(b.labels)
        return count / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=400, help="photo-sized JPEGs to generate (default 400)")
    parser.add_argument("--save", help="also write the table to this file")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    lines = [f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
             f"{'dataset':28s} {'source':10s} {'workers':>7s} {'images/s':>9s}"]
    print("\n".join(lines), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        sets = [("built-in 96px -> 76, crop 67", ImageFolder(make_builtin_dataset(quiet=True) / "train", 76), 67),
                ("photos 500x375 -> 256, 227", ImageFolder(photo_tree(Path(tmp) / "photos", args.images), 256), 227)]
        every_core = default_workers("cuda")     # the loader alone: one worker per core, as beside a GPU
        for name, folder, crop in sets:
            cache = ImageCache(folder, Path(tmp) / "cache")
            start = time.perf_counter()
            with DataLoader(folder, None, 1, workers=every_core) as loader:
                cache.build(loader.decoded_images())
            build = len(folder) / (time.perf_counter() - start)
            line = f"{name:28s} {'(build)':10s} {every_core:7d} {build:9.0f}"
            lines.append(line)
            print(line, flush=True)
            for source_name, source in (("decode", folder), ("cache", cache)):
                for workers in sorted({0, 1, every_core}):
                    line = f"{name:28s} {source_name:10s} {workers:7d} {images_per_second(source, crop, workers):9.0f}"
                    lines.append(line)
                    print(line, flush=True)
    if args.save:
        Path(args.save).write_text(" ".join(sys.argv) + "\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
