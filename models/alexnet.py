"""AlexNet as in the paper (Krizhevsky, Sutskever & Hinton 2012, Fig. 2), built only from minigrad.nn.

The paper split the network over two GPUs.  Here that split is visible in the code: ``towers.0`` and
``towers.1`` each hold half of every layer, and the towers exchange activations exactly where the
paper's GPUs did: conv3, fc6, fc7 and fc8 see both towers; conv2, conv4 and conv5 see only their own.

    tower t:  image ─ conv1 ─ relu ─ lrn ─ pool ─ conv2 ─ relu ─ lrn ─ pool ─┐
                                                                          both towers
              ┌───────────────────────────────────────────────────────────┘
              conv3 ─ relu ─ conv4 ─ relu ─ conv5 ─ relu ─ pool ─ flatten ─┐
              ┌──────────────────────────── both towers ──────────────────┘
              fc6 ─ relu ─ dropout ─┐ both ─ fc7 ─ relu ─ dropout ─┐ both ─ fc8 (shared) ─ logits

Local response normalisation runs over the channels of its own tower, as each GPU normalised its own
kernel maps.  A single grouped-convolution model (groups=2 on conv2, conv4, conv5) with the same weights
computes the same function if it applies LRN to each group's channels separately; ``to_grouped`` and
``from_grouped`` convert the weights (tests/test_alexnet.py checks the equivalence against PyTorch).

Input 3×227×227: the paper says 224, but only 227 makes conv1's arithmetic exact, (227 − 11)/4 + 1 = 55.
"""
from __future__ import annotations

import numpy as np

import minigrad as mg
from minigrad import nn
from minigrad.functional.conv import output_size as conv_output_size

# Filters or units of each layer, summed over the towers (the paper's numbers).
PAPER_WIDTHS = {"conv1": 96, "conv2": 256, "conv3": 384, "conv4": 384, "conv5": 256, "fc6": 4096, "fc7": 4096}
LAYERS_WITH_WEIGHTS = ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7"]   # per tower; fc8 is shared

# Initialisations.  weight std per layer (None: He, sqrt(2 / fan_in)) and bias per layer.
INITS = {
    # Paper §5: "weights from a zero-mean Gaussian with standard deviation 0.01; biases 1 in the second,
    # fourth and fifth conv layers and in the fully connected hidden layers, 0 in the others."
    "paper": ({}, 0.01, {"conv2": 1.0, "conv4": 1.0, "conv5": 1.0, "fc6": 1.0, "fc7": 1.0}),
    # Caffe's reference model: biases 1 "gave flat loss", so 0.1; fc6 and fc7 weights with std 0.005.
    "caffe": ({"fc6": 0.005, "fc7": 0.005}, 0.01, {"conv2": 0.1, "conv4": 0.1, "conv5": 0.1, "fc6": 0.1, "fc7": 0.1}),
    # He et al. 2015: std sqrt(2 / fan_in) for every layer, biases 0; the default (see AlexNet's docstring).
    "he": ({}, None, {}),
}


def tower_widths(width: float, towers: int) -> dict:
    """Filters or units of each layer in one tower: the paper's totals scaled by ``width``, split over the towers."""
    return {name: max(1, round(total * width / towers)) for name, total in PAPER_WIDTHS.items()}


def output_size(size: int, kernel: int, stride: int, padding: int, layer: str) -> int:
    """(size − kernel + 2·padding)/stride + 1, refusing sizes where that is not a whole number ≥ 1."""
    span = size - kernel + 2 * padding
    if span % stride or span < 0:
        raise ValueError(f"AlexNet: the input size does not work out at {layer}: ({size} − {kernel} + 2·{padding})/"
                         f"{stride} + 1 = {span / stride + 1:g}, not a whole number ≥ 1. Input sizes that work: 67, 99, "
                         "131, 163, 195, 227, 259, ... (32k + 3)")
    return conv_output_size(size, kernel, stride, padding)


class Tower(nn.Module):
    """One tower: its share of every layer, i.e. the part of the network that ran on one GPU."""

    def __init__(self, widths: dict, towers: int, final_hw: int, dropout: float):
        super().__init__()
        c1, c2, c3, c4, c5, f6, f7 = (widths[name] for name in LAYERS_WITH_WEIGHTS)
        self.conv1 = nn.Conv2d(3, c1, 11, stride=4)                       # sees the image
        self.relu1, self.lrn1, self.pool1 = nn.ReLU(), nn.LocalResponseNorm(5, 1e-4, 0.75, 2.0), nn.MaxPool2d(3, 2)
        self.conv2 = nn.Conv2d(c1, c2, 5, padding=2)                      # sees its own tower
        self.relu2, self.lrn2, self.pool2 = nn.ReLU(), nn.LocalResponseNorm(5, 1e-4, 0.75, 2.0), nn.MaxPool2d(3, 2)
        self.conv3 = nn.Conv2d(towers * c2, c3, 3, padding=1)             # sees both towers
        self.relu3 = nn.ReLU()
        self.conv4 = nn.Conv2d(c3, c4, 3, padding=1)                      # own tower
        self.relu4 = nn.ReLU()
        self.conv5 = nn.Conv2d(c4, c5, 3, padding=1)                      # own tower
        self.relu5, self.pool5, self.flatten = nn.ReLU(), nn.MaxPool2d(3, 2), nn.Flatten()
        self.fc6 = nn.Linear(towers * c5 * final_hw * final_hw, f6)       # sees both towers
        self.relu6, self.drop6 = nn.ReLU(), nn.Dropout(dropout)
        self.fc7 = nn.Linear(towers * f6, f7)                             # sees both towers
        self.relu7, self.drop7 = nn.ReLU(), nn.Dropout(dropout)

    def relu1_to_pool2(self, conv1):
        h = self.pool1(self.lrn1(self.relu1(conv1)))
        return self.pool2(self.lrn2(self.relu2(self.conv2(h))))

    def relu3_to_pool5(self, conv3):
        h = self.relu4(self.conv4(self.relu3(conv3)))
        return self.flatten(self.pool5(self.relu5(self.conv5(h))))

    def fc6_block(self, both):
        return self.drop6(self.relu6(self.fc6(both)))

    def fc7_block(self, both):
        return self.drop7(self.relu7(self.fc7(both)))


class AlexNet(nn.Module):
    """AlexNet, two towers by default: 60,965,224 parameters, ≈ 0.724 GMAC per 227×227 image.

    num_classes  output units of fc8 (1000 for ImageNet)
    towers       2: the paper's two-GPU network; 1: the single-tower network (62,378,344 parameters)
    width        scales the filters and units of every layer (0.25 gives a small model of the same shape)
    input_size   227, or any size where every layer's arithmetic is exact (32k + 3: 67, 99, ..., 227)
    dropout      p of the dropout after fc6 and fc7 (paper: 0.5)
    init         "he" (default), "paper" or "caffe".  Measured on random unit-variance images at 227 (two towers,
                 eval mode), the part of each layer's output that varies from image to image has std:
                              conv1   conv2   conv3   conv5    fc8
                     paper    0.15    0.018   0.0033  0.00036  0.0001
                     caffe    0.15    0.018   0.0033  0.00036  0.00003
                     he       1.1     0.55    0.25    0.22     0.18
                 With "paper" (N(0, 0.01), biases 1 in conv2/4/5 and fc6/7) and "caffe" (biases 0.1, std 0.005
                 in fc6/fc7) the logits hardly depend on the image at first, so the loss sits at
                 log(num_classes) until the weights grow; the paper trained for days.  "he" (std sqrt(2/fan_in),
                 biases 0) keeps the signal through all eight layers and the loss falls from the first epoch,
                 which is why it is the default.  The other two are there to reproduce the paper and Caffe.
    """

    def __init__(self, num_classes: int = 1000, towers: int = 2, width: float = 1.0, input_size: int = 227,
                 dropout: float = 0.5, init: str = "he"):
        super().__init__()
        if towers not in (1, 2):
            raise ValueError(f"AlexNet: towers must be 1 or 2, got {towers}")
        if init not in INITS:
            raise ValueError(f"AlexNet: init must be one of {', '.join(INITS)}, got {init!r}")
        if width <= 0:
            raise ValueError(f"AlexNet: width must be positive, got {width}")
        self.num_classes, self.n_towers, self.width, self.input_size = num_classes, towers, width, input_size
        self.init_name = init
        self.sizes = self._spatial_sizes(input_size)
        self.widths = tower_widths(width, towers)
        self.towers = nn.ModuleList([Tower(self.widths, towers, self.sizes["pool5"], dropout) for _ in range(towers)])
        self.fc8 = nn.Linear(towers * self.widths["fc7"], num_classes)  # sees both towers; shared
        self.initialize(init)

    @staticmethod
    def _spatial_sizes(input_size: int) -> dict:
        """Height (= width) of every layer's output, checking that each step divides exactly."""
        sizes = {"conv1": output_size(input_size, 11, 4, 0, "conv1")}
        sizes["pool1"] = output_size(sizes["conv1"], 3, 2, 0, "pool1")
        sizes["conv2"] = output_size(sizes["pool1"], 5, 1, 2, "conv2")
        sizes["pool2"] = output_size(sizes["conv2"], 3, 2, 0, "pool2")
        sizes["conv3"] = sizes["conv4"] = sizes["conv5"] = output_size(sizes["pool2"], 3, 1, 1, "conv3")
        sizes["pool5"] = output_size(sizes["conv5"], 3, 2, 0, "pool5")
        return sizes

    def initialize(self, init: str) -> None:
        """(Re)initialise every parameter by the named scheme (see the class docstring)."""
        stds, default_std, biases = INITS[init]
        layers = [(name, getattr(tower, name)) for tower in self.towers for name in LAYERS_WITH_WEIGHTS]
        for name, layer in layers + [("fc8", self.fc8)]:
            std = stds.get(name, default_std)
            if std is None:
                nn.init.kaiming_normal_(layer.weight)
            else:
                nn.init.normal_(layer.weight, std=std)
            nn.init.constant_(layer.bias, biases.get(name, 0.0))

    def forward(self, images):
        if images.ndim != 4 or images.shape[1:] != (3, self.input_size, self.input_size):
            raise ValueError(f"AlexNet: expected images of shape (N, 3, {self.input_size}, {self.input_size}), "
                             f"got {images.shape}")
        towers = list(self.towers)
        conv1 = _side_by_side([t.conv1 for t in towers], images)           # every tower's conv1 sees the image
        both = _join([t.relu1_to_pool2(c) for t, c in zip(towers, conv1)])
        conv3 = _side_by_side([t.conv3 for t in towers], both)             # conv3 sees both towers
        both = _join([t.relu3_to_pool5(c) for t, c in zip(towers, conv3)])  # fc6 sees both towers
        both = _join([t.fc6_block(both) for t in towers])           # fc7 sees both towers
        both = _join([t.fc7_block(both) for t in towers])           # fc8 sees both towers
        return self.fc8(both)

    # ----- description ---------------------------------------------------------------------------
    def layer_table(self, input_size: int | None = None) -> list[dict]:
        """One row per layer and tower, in execution order: what summary() prints (and tests check).

        input_size: describe the same architecture at another input size (fc6 then has other inputs).
        """
        rows, w, towers = [], self.widths, self.n_towers
        s = self.sizes if input_size in (None, self.input_size) else self._spatial_sizes(input_size)

        def conv(name, t, sees, c_in, c_out, k, stride, pad):
            hw = s[name]
            rows.append(dict(layer=name, tower=t, sees=sees, units=c_out, geometry=f"{k}/{stride}/{pad}",
                             output=(c_out, hw, hw), params=c_out * (c_in * k * k + 1), macs=c_out * c_in * k * k * hw * hw))

        def no_weights(name, t, geometry, channels, hw):
            rows.append(dict(layer=name, tower=t, sees="own", units=None, geometry=geometry,
                             output=(channels, hw, hw), params=0, macs=0))

        def fc(name, t, c_in, c_out):
            rows.append(dict(layer=name, tower=t, sees="both" if towers > 1 else "own", units=c_out, geometry="",
                             output=(c_out,), params=c_out * (c_in + 1), macs=c_out * c_in))

        both = "both" if towers > 1 else "own"
        for t in range(towers):
            conv("conv1", t, "image", 3, w["conv1"], 11, 4, 0)
            no_weights("lrn1", t, "n=5", w["conv1"], s["conv1"])
            no_weights("pool1", t, "3/2/0", w["conv1"], s["pool1"])
            conv("conv2", t, "own", w["conv1"], w["conv2"], 5, 1, 2)
            no_weights("lrn2", t, "n=5", w["conv2"], s["conv2"])
            no_weights("pool2", t, "3/2/0", w["conv2"], s["pool2"])
        for t in range(towers):
            conv("conv3", t, both, towers * w["conv2"], w["conv3"], 3, 1, 1)
            conv("conv4", t, "own", w["conv3"], w["conv4"], 3, 1, 1)
            conv("conv5", t, "own", w["conv4"], w["conv5"], 3, 1, 1)
            no_weights("pool5", t, "3/2/0", w["conv5"], s["pool5"])
        flat = towers * w["conv5"] * s["pool5"] ** 2
        rows.append(dict(layer="flatten", tower=None, sees=both, units=None, geometry="", output=(flat,), params=0, macs=0))
        for t in range(towers):
            fc("fc6", t, flat, w["fc6"])
        for t in range(towers):
            fc("fc7", t, towers * w["fc6"], w["fc7"])
        fc("fc8", None, towers * w["fc7"], self.num_classes)
        return rows

    def summary(self, input_size: int | None = None) -> str:
        """Print (and return) the per-layer table: shapes, parameters and multiply-accumulates."""
        input_size = input_size or self.input_size
        rows = self.layer_table(input_size)
        header = ("layer", "tower", "sees", "filters/units", "kernel/stride/pad", "output (C×H×W)", "parameters", "MACs")
        lines = [header]
        for r in rows:
            lines.append((r["layer"], "-" if r["tower"] is None else str(r["tower"]), r["sees"],
                          "" if r["units"] is None else str(r["units"]), r["geometry"],
                          "×".join(str(d) for d in r["output"]), f"{r['params']:,}", f"{r['macs']:,}"))
        params, macs = sum(r["params"] for r in rows), sum(r["macs"] for r in rows)
        lines.append(("total", "", "", "", "", "", f"{params:,}", f"{macs:,}"))
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        right = {3, 6, 7}
        text = [f"AlexNet: {self.n_towers} tower(s), width {self.width}, input 3×{input_size}×{input_size}, "
                f"{self.num_classes} classes, init '{self.init_name}'"]
        for i, line in enumerate(lines):
            if i == len(lines) - 1:
                text.append("-" * (sum(widths) + 2 * (len(widths) - 1)))
            text.append("  ".join(c.rjust(wd) if j in right else c.ljust(wd) for j, (c, wd) in enumerate(zip(line, widths))).rstrip())
        text.append(f"{params / 1e6:.2f} M parameters, {macs / 1e9:.3f} GMAC per image forward "
                    f"(conv and fc multiply-accumulates; ≈ 3× that for a training step)")
        result = "\n".join(text)
        print(result)
        return result


def _side_by_side(convs, x):
    """Every conv layer in ``convs`` applied to the same input x: one output per layer.

    The paper's GPUs ran their towers at the same time; here they run one after the other.  So layers
    that read the same input (conv1: the image; conv3: both towers) run as ONE convolution whose filters
    are the layers' filters side by side, and its output is split again.  The arithmetic is the same, but
    x is unfolded into columns once instead of once per tower, and each matmul is twice as wide, which
    BLAS runs faster (a CPU training step at batch 32: conv1 + conv3, 330 → 250 ms).
    Layers with forward hooks (minigrad.trace, or yours) are called one by one, so each hook sees its
    own layer's call; so are layers that differ in geometry, groups or bias, or are not plain Conv2d.
    """
    first = convs[0]
    alike = all(type(c) is nn.Conv2d and c.groups == 1 and c.bias is not None and not c._forward_hooks
                and (c.kernel_size, c.stride, c.padding) == (first.kernel_size, first.stride, first.padding)
                and c.weight.shape[1:] == first.weight.shape[1:] == (x.shape[1], *first.kernel_size)
                and c.bias.shape == (c.weight.shape[0],)
                for c in convs)
    if len(convs) > 1 and alike:
        weight, bias = mg.cat([c.weight for c in convs]), mg.cat([c.bias for c in convs])
        y = mg.functional.conv2d(x, weight, bias, first.stride, first.padding)
        return mg.split(y, [c.weight.shape[0] for c in convs], axis=1)
    return [conv(x) for conv in convs]    # (a weight of a wrong shape among them: its layer's error names it)


def _join(parts):
    """Concatenate the towers' outputs along the channel/unit axis (one tower: nothing to join)."""
    return parts[0] if len(parts) == 1 else mg.cat(parts, axis=1)


# ----- weights in the grouped-convolution layout --------------------------------------------------
def to_grouped(state: dict, towers: int = 2) -> dict[str, np.ndarray]:
    """Two-tower state dict -> the layout of one grouped-convolution model (Caffe/PyTorch style).

    Keys become conv1.weight ... fc8.bias.  Tower t's filters (units) become output channels (rows)
    t·n ... (t+1)·n − 1, so conv2, conv4 and conv5 are convolutions with groups=towers, while conv1,
    conv3 and the fc layers are ordinary layers whose outputs are the towers' outputs side by side.
    """
    arrays = {k: (v.numpy() if isinstance(v, mg.Tensor) else np.asarray(v)) for k, v in state.items()}
    grouped = {}
    for layer in LAYERS_WITH_WEIGHTS:
        for kind in ("weight", "bias"):
            grouped[f"{layer}.{kind}"] = np.concatenate([arrays[f"towers.{t}.{layer}.{kind}"] for t in range(towers)])
    grouped["fc8.weight"], grouped["fc8.bias"] = arrays["fc8.weight"], arrays["fc8.bias"]
    return grouped


def from_grouped(grouped: dict, towers: int = 2) -> dict[str, np.ndarray]:
    """The inverse of ``to_grouped``: cut each layer's output channels (rows) into the towers' shares."""
    state = {}
    for layer in LAYERS_WITH_WEIGHTS:
        for kind in ("weight", "bias"):
            parts = np.split(np.asarray(grouped[f"{layer}.{kind}"]), towers)
            for t, part in enumerate(parts):
                state[f"towers.{t}.{layer}.{kind}"] = part
    state["fc8.weight"], state["fc8.bias"] = np.asarray(grouped["fc8.weight"]), np.asarray(grouped["fc8.bias"])
    return state

