"""Pictures of what a network holds: filters as an image grid (the paper's Figure 3 layout)."""
from __future__ import annotations

import math

import numpy as np

from .tensor import Tensor


def _as_array(weight) -> np.ndarray:
    return weight.numpy() if isinstance(weight, Tensor) else np.asarray(weight)


def filter_grid(weights, columns: int | None = None, zoom: int = 4, gap: int = 1) -> np.ndarray:
    """Conv filters as one RGB image (uint8, H×W×3): each filter a tile, each tower a block, blocks side by side.

    weights: one array (O, C, kh, kw) or a list of them (one per tower, as in the paper's Figure 3).
    Filters with 3 input channels show in colour; others show their first channel in grey.
    Each filter is stretched to the full 0..255 range on its own, so weak filters stay visible.
    """
    blocks = [_as_array(w) for w in (weights if isinstance(weights, (list, tuple)) else [weights])]
    count, _, kh, kw = blocks[0].shape
    columns = columns or math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    tile_h, tile_w = kh * zoom + gap, kw * zoom + gap
    separator = 4 * gap
    width = len(blocks) * columns * tile_w + (len(blocks) - 1) * separator + gap
    image = np.full((rows * tile_h + gap, width, 3), 255, dtype=np.uint8)
    for b, block in enumerate(blocks):
        left = b * (columns * tile_w + separator)
        for i, f in enumerate(block):
            f = f[:3].transpose(1, 2, 0) if f.shape[0] == 3 else np.repeat(f[0][..., None], 3, axis=2)
            low, high = f.min(), f.max()
            f = ((f - low) / (high - low if high > low else 1) * 255).astype(np.uint8)
            f = f.repeat(zoom, axis=0).repeat(zoom, axis=1)
            top, x = gap + (i // columns) * tile_h, left + gap + (i % columns) * tile_w
            image[top:top + kh * zoom, x:x + kw * zoom] = f
    return image
