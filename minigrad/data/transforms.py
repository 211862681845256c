"""The paper's image preprocessing (Krizhevsky et al. 2012, §2 and §4.1), one small function per step.

Images are NumPy arrays of shape (H, W, 3), uint8 as decoded or float32 in [0, 1] once scaled; the
network gets (3, H, W) float32.  ``Preprocess`` (data/loader.py) chains them, a batch at a time:
training:    random window (``crop``) → CHW (``backend.cpu.transposed_copy``) → scale to [0, 1]
             → subtract the mean → PCA colour noise → ÷ std → mirrored half the time
evaluation:  centre window (or the ten windows, five of them mirrored) → CHW → scale to [0, 1]
             → subtract the mean → ÷ std
Every step but the window is per pixel, so mirroring last gives the same values as mirroring the crop.
The paper subtracts its mean image (256×256) before cropping; a per-pixel mean is cropped with the image
here, which gives the same values with less arithmetic.
"""
from __future__ import annotations

import numpy as np
from PIL import Image


def resize_for_crop(crop: int) -> int:
    """The shorter side to resize to before taking crops of ``crop``: the paper's 256 for 227, scaled with it."""
    return round(crop * 256 / 227)


def center_square(image: Image.Image, size: int) -> np.ndarray:
    """Shorter side scaled to ``size`` and the central size×size square kept (paper §2: 256), as (size, size, 3) uint8.

    Only the central square of the source is resampled, so a 40000×8 strip costs no more than a square.
    For JPEGs, ``draft`` lets the decoder skip detail it would throw away (it decodes at 1/2, 1/4 or 1/8
    scale), which makes large photos several times cheaper to load.
    """
    w, h = image.size
    if image.format == "JPEG" and min(w, h) >= 2 * size:
        image.draft("RGB", (max(size, round(w * size / min(w, h))), max(size, round(h * size / min(w, h)))))
        w, h = image.size                       # the decoder's reduced size
    image = to_rgb(image)
    side = min(w, h)
    box = ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)
    return np.asarray(image.resize((size, size), Image.BILINEAR, box=box))


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow image as 8-bit RGB: 16-bit and float images are scaled (not clipped), and transparent
    pixels are put on white (not left showing whatever colour lies under them)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        top = 1.0 if image.mode == "F" and values.max() <= 1.0 else (255.0 if values.max() <= 255 else 65535.0)
        image = Image.fromarray(np.clip(values / top * 255.0 + 0.5, 0, 255).astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
    return image.convert("RGB")


def center_window(height: int, width: int, size: int) -> tuple[slice, slice]:
    """The rows and columns of the central size×size window (paper: the central 256×256 patch)."""
    top, left = (height - size) // 2, (width - size) // 2
    return slice(top, top + size), slice(left, left + size)


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
    """The central size×size window of an (H, W, C) image."""
    return crop(image, center_window(*image.shape[:2], size))


def random_window(height: int, width: int, size: int, rng: np.random.Generator) -> tuple[slice, slice]:
    """The rows and columns of a size×size window at a uniformly random position (paper: 224 of 256; here 227)."""
    top, left = rng.integers(0, height - size + 1), rng.integers(0, width - size + 1)
    return slice(top, top + size), slice(left, left + size)


def ten_windows(height: int, width: int, size: int) -> list[tuple[tuple[slice, slice], bool]]:
    """(window, mirrored) of the paper's test-time crops: four corners and the centre, then each of them mirrored."""
    corners = [(0, 0), (0, width - size), (height - size, 0), (height - size, width - size)]
    windows = [(slice(t, t + size), slice(l, l + size)) for t, l in corners] + [center_window(height, width, size)]
    return [(window, False) for window in windows] + [(window, True) for window in windows]


def crop(image: np.ndarray, window: tuple[slice, slice], mirrored: bool = False) -> np.ndarray:
    """The (rows, columns) ``window`` of an (H, W, C) image, mirrored left–right when asked (paper §4.1:
    horizontal reflections).  A view, no copy."""
    pixels = image[window]
    return pixels[:, ::-1] if mirrored else pixels


def pca_of_covariance(covariance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """λ (descending) and p (columns) of a 3×3 RGB covariance, as float32.

    Computed once from the running sums of a training sample (loader.image_statistics).
    λ is a variance in the units of the pixels ([0, 1]² here), so the colour noise below shifts a
    pixel by about α·λ ≈ 0.1·λ: a couple of grey levels for typical images.
    """
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    order = eigenvalues.argsort()[::-1]
    return eigenvalues[order].astype(np.float32), eigenvectors[:, order].astype(np.float32)


def pca_colour_shift(eigenvalues, eigenvectors, rng: np.random.Generator, std: float = 0.1) -> np.ndarray:
    """[p₁ p₂ p₃]·[α₁λ₁, α₂λ₂, α₃λ₃]ᵀ, αᵢ ~ N(0, std²) drawn once per image (paper §4.1): the colour (3,) that
    PCA colour noise adds to every pixel of one image.

    It shifts the image's colour along the principal axes of natural colour variation, which makes the
    network less sensitive to illumination.
    """
    alpha = rng.normal(0.0, std, 3).astype(np.float32)
    return eigenvectors @ (alpha * eigenvalues)


def to_unit_float(image: np.ndarray) -> np.ndarray:
    """uint8 [0, 255] -> float32 [0, 1]."""
    return image.astype(np.float32) / 255.0
