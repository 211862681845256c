"""The paper's image preprocessing (Krizhevsky et al. 2012, §2 and §4.1), one small function per step.

Images are NumPy arrays of shape (H, W, 3), uint8 as decoded or float32 in [0, 1] once scaled; the
network gets (3, H, W) float32.  ``Preprocess`` chains them:
training:    scale to [0, 1] → subtract the mean → random crop → maybe flip → PCA colour noise → ÷ std → CHW
evaluation:  scale to [0, 1] → subtract the mean → centre crop (or the ten crops) → ÷ std → CHW
The mean is subtracted before cropping, as in the paper, so that a per-pixel mean image (256×256) fits.
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


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
    """The central size×size window of an (H, W, C) image (paper: the central 256×256 patch)."""
    h, w = image.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    return image[top:top + size, left:left + size]


def random_crop(image: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A size×size window at a uniformly random position (paper: 224 of 256; here 227)."""
    h, w = image.shape[:2]
    top, left = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
    return image[top:top + size, left:left + size]


def horizontal_flip(image: np.ndarray) -> np.ndarray:
    """Mirror left–right."""
    return image[:, ::-1]


def ten_crops(image: np.ndarray, size: int) -> list[np.ndarray]:
    """The paper's test-time crops: four corners and the centre, and each of them mirrored (10 in all)."""
    h, w = image.shape[:2]
    corners = [(0, 0), (0, w - size), (h - size, 0), (h - size, w - size)]
    crops = [image[t:t + size, l:l + size] for t, l in corners] + [center_crop(image, size)]
    return crops + [horizontal_flip(c) for c in crops]


def pca_of_covariance(covariance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """λ (descending) and p (columns) of a 3×3 RGB covariance, as float32.

    Computed once from the running sums of a training sample (loader.image_statistics).
    λ is a variance in the units of the pixels ([0, 1]² here), so the colour noise below shifts a
    pixel by about α·λ ≈ 0.1·λ: a couple of grey levels for typical images.
    """
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    order = eigenvalues.argsort()[::-1]
    return eigenvalues[order].astype(np.float32), eigenvectors[:, order].astype(np.float32)


def pca_colour_noise(image: np.ndarray, eigenvalues, eigenvectors, rng: np.random.Generator, std: float = 0.1):
    """Add [p₁ p₂ p₃]·[α₁λ₁, α₂λ₂, α₃λ₃]ᵀ to every pixel, αᵢ ~ N(0, std²) drawn once per image (paper §4.1).

    Shifts the image's colour along the principal axes of natural colour variation, which makes the
    network less sensitive to illumination.  image: float (H, W, 3) in [0, 1].
    """
    alpha = rng.normal(0.0, std, 3).astype(np.float32)
    return image + eigenvectors @ (alpha * eigenvalues)


def to_chw(image: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Divide by the per-channel std and reorder HWC -> CHW, float32 and contiguous (what conv1 wants)."""
    return np.ascontiguousarray((image / std).transpose(2, 0, 1), dtype=np.float32)


def to_unit_float(image: np.ndarray) -> np.ndarray:
    """uint8 [0, 255] -> float32 [0, 1]."""
    return image.astype(np.float32) / 255.0
