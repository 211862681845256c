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
        tiles = [f[:3].transpose(1, 2, 0) if f.shape[0] == 3 else np.repeat(f[0][..., None], 3, axis=2) for f in block]
        _paste_grid(image, tiles, b * (columns * tile_w + separator), columns, zoom, gap)
    return image


def feature_maps(activation, count: int = 8, zoom: int | None = None, columns: int | None = None) -> np.ndarray:
    """The first ``count`` channels of one image's activation (C, H, W) (or (1, C, H, W)) as a grey grid, uint8.

    Each map is stretched to 0..255 on its own; a map that is constant (e.g. all zero after ReLU) is black.
    """
    a = _as_array(activation)
    a = a[0] if a.ndim == 4 else a
    maps = a[:count].astype(np.float64)
    h, w = maps.shape[1:]
    zoom = zoom or max(1, 96 // max(h, w))
    columns = columns or min(len(maps), 4)
    rows = math.ceil(len(maps) / columns)
    gap = 2
    image = np.full((rows * (h * zoom + gap) + gap, columns * (w * zoom + gap) + gap), 255, dtype=np.uint8)
    _paste_grid(image, maps, 0, columns, zoom, gap)
    return image


def _paste_grid(image, tiles, left: int, columns: int, zoom: int, gap: int) -> None:
    """Paste ``tiles`` (each H×W[×3], stretched and zoomed) into ``image``, ``columns`` to a row, from column ``left``."""
    h, w = tiles[0].shape[:2]
    for i, tile in enumerate(tiles):
        top, x = gap + (i // columns) * (h * zoom + gap), left + gap + (i % columns) * (w * zoom + gap)
        image[top:top + h * zoom, x:x + w * zoom] = _stretched_tile(tile, zoom)


def _stretched_tile(tile, zoom: int) -> np.ndarray:
    """``tile`` (H, W[, 3]) stretched to 0..255 as uint8 (a constant tile is black), each pixel zoom×zoom."""
    low, high = tile.min(), tile.max()
    tile = ((tile - low) / (high - low if high > low else 1) * 255).astype(np.uint8)
    return tile.repeat(zoom, axis=0).repeat(zoom, axis=1)


def to_dot(tensor: Tensor, name: str = "output") -> str:
    """The autograd graph that made ``tensor``, as Graphviz DOT text.

    Boxes are ops (their Function class), ovals are tensors that no op made: inputs and parameters,
    with their shapes.  Edges point the way the forward pass went.  ``render_dot`` draws it.
    """
    lines = ["digraph autograd {", "  rankdir=LR;", '  node [fontname="Helvetica", fontsize=10];']
    seen, stack = set(), [tensor.grad_fn]
    lines.append(f'  out [label="{_escape(name)}\\n{tensor.shape}", shape=oval, style=filled, fillcolor=lightblue];')
    if tensor.grad_fn is None:
        return "\n".join(lines + ["}"])
    lines.append(f"  f{id(tensor.grad_fn)} -> out;")
    while stack:
        fn = stack.pop()
        if id(fn) in seen:
            continue
        seen.add(id(fn))
        lines.append(f'  f{id(fn)} [label="{fn.name}", shape=box, style=filled, fillcolor=lightyellow];')
        for x in fn.inputs:
            if x.grad_fn is not None:
                which = f' [label="{x._output_index}"]' if len(x.grad_fn.output_meta) > 1 else ""   # e.g. a split's part
                lines.append(f"  f{id(x.grad_fn)} -> f{id(fn)}{which};")
                stack.append(x.grad_fn)
            else:
                if id(x) not in seen:
                    seen.add(id(x))
                    colour = "palegreen" if x.requires_grad else "white"
                    lines.append(f'  t{id(x)} [label="{x.shape}", shape=oval, style=filled, fillcolor={colour}];')
                lines.append(f"  t{id(x)} -> f{id(fn)};")
    if tensor.grad_fn.released:
        lines.insert(1, '  label="(backward already ran, so the graph behind this op was freed)";')
    return "\n".join(lines + ["}"])


def _escape(text: str) -> str:
    return str(text).replace("\\", "\\\\").replace('"', '\\"')


def render_dot(dot: str, path) -> str | None:
    """Draw DOT text to a PNG with Graphviz's ``dot`` program; returns None, or a note when ``dot`` is missing."""
    import shutil
    import subprocess

    if shutil.which("dot") is None:
        return ("Graphviz's `dot` program is not installed, so the graph was not drawn; the DOT text can be "
                "pasted into any Graphviz viewer (apt install graphviz, or brew install graphviz)")
    subprocess.run(["dot", "-Tpng", "-o", str(path)], input=dot, text=True, check=True)
    return None
