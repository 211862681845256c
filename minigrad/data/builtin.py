"""The built-in dataset: ten classes of shapes and textures, written as JPEGs in the ImageFolder layout.

It exists so that ``python examples/train_alexnet.py`` shows AlexNet learning on any machine, through
the same pipeline as ImageNet (JPEG decoding, resizing, crops, flips, colour noise).  Every image has
a random background colour and gradient, a random foreground colour, size and position, and pixel
noise; the class is the shape or texture.  Every class looks the same mirrored, so horizontal flips
keep the label, and objects sit anywhere in the frame, so random crops matter.  The images depend
only on the seed: the same seed gives the same files.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CLASSES = ["checkerboard", "circle", "cross", "diamond", "dots", "horizontal-stripes", "ring", "square", "triangle",
           "vertical-stripes"]
VERSION = 1


def cache_home() -> Path:
    """minigrad's folder for generated and cached data: $XDG_CACHE_HOME/minigrad, else ~/.cache/minigrad."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "minigrad"


def default_root(seed: int = 0) -> Path:
    """Where the built-in dataset lives: in $MINIGRAD_DATA, else in cache_home(), in a folder named by version and seed."""
    return Path(os.environ.get("MINIGRAD_DATA") or cache_home()) / f"builtin-shapes-v{VERSION}-seed{seed}"


def _colour(rng, avoid=None):
    """A random RGB colour, at least 120 (summed over channels) away from ``avoid``."""
    while True:
        colour = rng.integers(0, 256, 3)
        if avoid is None or np.abs(colour - avoid).sum() > 120:
            return colour


def draw_example(label: str, rng: np.random.Generator, size: int = 96) -> Image.Image:
    """One image of class ``label``: a shape or texture on a noisy, shaded background."""
    background = _colour(rng)
    foreground = _colour(rng, avoid=background)
    # background: a colour with a random linear shading across the image
    ramp = np.linspace(-1, 1, size)
    angle = rng.uniform(0, 2 * np.pi)
    shade = (np.cos(angle) * ramp[None, :] + np.sin(angle) * ramp[:, None]) * rng.uniform(0, 30)
    pixels = np.clip(background[None, None, :] + shade[..., None], 0, 255)
    image = Image.fromarray(pixels.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    fill = tuple(int(c) for c in foreground)

    extent = int(rng.uniform(0.35, 0.65) * size)             # the object's width and height
    x0, y0 = (int(v) for v in rng.integers(0, size - extent, 2))
    x1, y1, cx, cy = x0 + extent, y0 + extent, x0 + extent / 2, y0 + extent / 2
    stroke = max(2, extent // 6)
    if label == "circle":
        draw.ellipse([x0, y0, x1, y1], fill=fill)
    elif label == "ring":
        draw.ellipse([x0, y0, x1, y1], outline=fill, width=stroke)
    elif label == "square":
        draw.rectangle([x0, y0, x1, y1], fill=fill)
    elif label == "triangle":
        draw.polygon([(cx, y0), (x1, y1), (x0, y1)], fill=fill)
    elif label == "diamond":
        draw.polygon([(cx, y0), (x1, cy), (cx, y1), (x0, cy)], fill=fill)
    elif label == "cross":
        draw.rectangle([cx - stroke / 2, y0, cx + stroke / 2, y1], fill=fill)
        draw.rectangle([x0, cy - stroke / 2, x1, cy + stroke / 2], fill=fill)
    else:   # textures fill a random box
        period = int(rng.integers(6, 12))
        yy, xx = np.mgrid[0:extent, 0:extent]
        mask = {"horizontal-stripes": (yy // (period // 2)) % 2 == 0,
                "vertical-stripes": (xx // (period // 2)) % 2 == 0,
                "checkerboard": ((yy // (period // 2)) + (xx // (period // 2))) % 2 == 0,
                "dots": ((yy % period - period / 2) ** 2 + (xx % period - period / 2) ** 2) < (period / 3.5) ** 2}[label]
        pixels = np.asarray(image).copy()
        pixels[y0:y1, x0:x1][mask] = foreground
        image = Image.fromarray(pixels)
    noisy = np.asarray(image).astype(np.float32) + rng.normal(0, rng.uniform(4, 14), (size, size, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def make_builtin_dataset(root=None, seed: int = 0, train_per_class: int = 400, val_per_class: int = 60,
                         size: int = 96, quiet: bool = False) -> Path:
    """Write the dataset to ``root`` (default: ``default_root(seed)``) unless it is already there; return root.

    Layout: root/train/<class>/<n>.jpg and root/val/<class>/<n>.jpg.  The folder appears whole or not
    at all (written next to it, then renamed), so an interrupted run never leaves half a dataset.
    """
    root = Path(root) if root is not None else default_root(seed)
    config = {"version": VERSION, "seed": seed, "train_per_class": train_per_class, "val_per_class": val_per_class,
              "size": size, "classes": CLASSES}
    marker = root / "dataset.json"
    if marker.exists():
        if json.loads(marker.read_text()) == config:
            return root
        raise ValueError(f"{root} holds a built-in dataset made with other settings ({marker}); remove it or "
                         "choose another folder")
    if root.exists():
        raise ValueError(f"{root} exists but is not a complete built-in dataset; remove it or choose another folder")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=root.name + ".", dir=root.parent))
    try:
        total = len(CLASSES) * (train_per_class + val_per_class)
        if not quiet:
            print(f"Generating the built-in dataset ({total} JPEGs, {len(CLASSES)} classes) in {root} ...", flush=True)
        for split_index, (split, count) in enumerate([("train", train_per_class), ("val", val_per_class)]):
            for class_index, label in enumerate(CLASSES):
                folder = tmp / split / label
                folder.mkdir(parents=True)
                for i in range(count):
                    rng = np.random.default_rng([seed, split_index, class_index, i])
                    draw_example(label, rng, size).save(folder / f"{i:05d}.jpg", quality=90)
        (tmp / "dataset.json").write_text(json.dumps(config, indent=1))
        os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root
