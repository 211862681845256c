"""Step through AlexNet's forward and backward pass, one layer at a time, with every number explained.

    python examples/step_through.py                      # the full two-tower network, a built-in sample image
    python examples/step_through.py --no-pause           # print the whole lesson at once
    python examples/step_through.py --image cat.jpg --target 3 --towers 1
    python examples/step_through.py --checkpoint runs/alexnet/best.npz   # a network you trained
    python examples/step_through.py --json > pass.json   # the same numbers for a notebook
    python examples/step_through.py --html lesson/      # a page with feature maps and gradients

Interactive keys: Enter = next layer, c = continue to the end, p = print a slice of the current tensor,
q = quit.  The network runs in evaluation mode (dropout is the identity), so every run is the same.
"""
from __future__ import annotations

import argparse
import html
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import minigrad as mg  # noqa: E402
import minigrad.functional as F  # noqa: E402
from minigrad.data import BUILTIN_CLASSES, Preprocess  # noqa: E402
from minigrad.data import transforms as T  # noqa: E402
from minigrad.data.builtin import draw_example  # noqa: E402
from minigrad.trace import Trace  # noqa: E402
from models.alexnet import AlexNet  # noqa: E402

PRESETS = {"full": dict(width=1.0, input_size=227), "cpu": dict(width=0.25, input_size=67)}   # as train_alexnet.py
SEES = {"image": "the image", "own": "its own tower", "both": "both towers"}   # AlexNet.layer_table()'s "sees"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image", type=Path, help="an image file (default: a sample of the built-in dataset)")
    p.add_argument("--preset", choices=sorted(PRESETS), default="full", help="full: the paper's network at 227 "
                   "(default); cpu: width 0.25 at 67, as trained by examples/train_alexnet.py on a CPU")
    p.add_argument("--towers", type=int, choices=[1, 2], default=2, help="2: the paper's two towers (default)")
    p.add_argument("--checkpoint", type=Path, help="weights from examples/train_alexnet.py (overrides --preset/--towers)")
    p.add_argument("--target", default="0", help="the class whose loss is back-propagated: an index or a class name")
    p.add_argument("--seed", type=int, default=0, help="seed for the weights of an untrained network")
    p.add_argument("--no-pause", action="store_true", help="print everything without waiting for keys")
    p.add_argument("--json", action="store_true", help="print the records as JSON instead of the lesson")
    p.add_argument("--html", type=Path, metavar="DIR", help="also write DIR/index.html with feature maps and gradients")
    return p.parse_args(argv)


# ----- the network and the image -----------------------------------------------------------------
def build(args):
    """(model, class names, normalisation stats) from a checkpoint or from the preset."""
    if args.checkpoint:
        checkpoint = mg.load(args.checkpoint)
        c = checkpoint["config"]
        model = AlexNet(len(checkpoint["classes"]), c["towers"], c["width"], c["input_size"])
        model.load_state_dict(checkpoint["model"])
        stats = {k: v.numpy() for k, v in checkpoint["stats"].items()}
        return model.eval(), checkpoint["classes"], stats
    mg.manual_seed(args.seed)
    preset = PRESETS[args.preset]
    # full: the paper's ImageNet network (1000 classes); cpu: the built-in dataset's 10, as train_alexnet.py trains it
    classes = [f"class {i}" for i in range(1000)] if args.preset == "full" else list(BUILTIN_CLASSES)
    model = AlexNet(len(classes), args.towers, preset["width"], preset["input_size"])
    return model.eval(), classes, None


def load_image(args, size: int, stats) -> tuple[np.ndarray, str]:
    """(1, 3, size, size) float32 input and a description: the paper's resize, centre crop and normalisation."""
    if args.image:
        picture, description = Image.open(args.image), str(args.image)
    else:
        picture = draw_example("circle", np.random.default_rng([args.seed, 7]), 96)
        description = "a built-in sample (class 'circle')"
    square = T.center_square(picture, T.resize_for_crop(size))
    if stats is None:   # an untrained network: normalise with the image's own statistics
        pixels = T.to_unit_float(T.center_crop(square, size))
        mean, std = pixels.mean(axis=(0, 1)), pixels.std(axis=(0, 1)) + 1e-6
    else:
        mean, std = stats["mean"], stats["std"]
    return Preprocess(size, mean, std, "eval")(square, None)[None], description


def run(args):
    """Forward and backward of one image with every layer recorded: (model, classes, trace, loss, probs, target, image)."""
    model, classes, stats = build(args)
    image_array, description = load_image(args, model.input_size, stats)
    target = classes.index(args.target) if args.target in classes else int(args.target)
    if not 0 <= target < len(classes):
        raise SystemExit(f"error: --target {args.target} is not a class index in 0..{len(classes) - 1} or a class name")
    image = mg.tensor(image_array, requires_grad=True)   # so that the gradient reaches the pixels too
    with Trace(model) as trace:
        logits = model(image)
        loss = F.cross_entropy(logits, [target])
        loss.backward()
    z = logits.numpy()[0].astype(np.float64)
    probs = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    return model, classes, trace, loss.item(), probs, target, description


# ----- the lesson -------------------------------------------------------------------------------------
class Pager:
    """Prints the lesson; in interactive mode waits after each step for Enter, c, p or q."""

    def __init__(self, interactive: bool):
        self.interactive = interactive

    def say(self, text: str = "") -> None:
        print(text)

    def pause(self, tensor: np.ndarray | None) -> None:
        while self.interactive:
            try:
                key = input("  [Enter] next  c continue  p print a slice  q quit > ").strip().lower()
            except EOFError:            # input ran out: go on without pausing
                self.interactive = False
                return
            except KeyboardInterrupt:   # Ctrl-C: like q
                key = "q"
            if key == "p":
                print(_slice(tensor) if tensor is not None else "  (nothing to print at this step)")
            elif key == "c":
                self.interactive = False
            elif key == "q":
                print("Stopped.")
                raise SystemExit(0)
            elif key == "":
                return
            else:
                print("  keys: Enter = next step, c = continue to the end, p = print a slice of the tensor, q = quit")


def _slice(tensor: np.ndarray) -> str:
    """A small corner of a tensor (first image; a few channels, rows and columns) for the 'p' key."""
    t = tensor[0]
    corner = t[:2, :4, :6] if t.ndim == 3 else t[:12]
    where = "[0, :2, :4, :6]" if t.ndim == 3 else "[0, :12]"
    return f"  tensor{where} of shape {tensor.shape}:\n" + "  " + np.array2string(
        corner, precision=4, suppress_small=True, max_line_width=110).replace("\n", "\n  ")


def what_each_layer_sees(model) -> dict:
    """Layer name -> what its conv or fc layer sees ("the image", "its own tower", "both towers")."""
    return {row["layer"]: SEES[row["sees"]] for row in model.layer_table()}


def describe(record, sees_by_layer: dict) -> str:
    """One line: the layer's name, its tower and (for conv and fc layers) what it sees, and what it computes.
    ``sees_by_layer``: ``what_each_layer_sees(model)``."""
    m = record.module
    if record.kind == "Conv2d":
        what = (f"{m.out_channels} filters {m.kernel_size[0]}×{m.kernel_size[1]} over {m.in_channels} channels, "
                f"stride {m.stride[0]}, padding {m.padding[0]}")
    elif record.kind == "Linear":
        what = f"{m.out_features} units, each connected to all {m.in_features} inputs"
    elif record.kind == "MaxPool2d":
        what = f"max over {m.kernel_size[0]}×{m.kernel_size[1]} windows, stride {m.stride[0]} (overlapping: the paper's §3.4)"
    elif record.kind == "LocalResponseNorm":
        what = f"normalise across {m.size} neighbouring channels (the paper's §3.3)"
    elif record.kind == "ReLU":
        what = "max(x, 0)"
    elif record.kind == "Dropout":
        what = f"p = {m.p}: the identity now (evaluation mode); in training {m.p:.0%} of the units are dropped"
    else:
        what = "one long vector per image for the fully connected layers"
    layer = record.name.split(".")[-1]
    sees = sees_by_layer[layer] if record.kind in ("Conv2d", "Linear") else None
    tower = "" if record.tower is None else f", tower {record.tower}"
    return f"{record.name} ({record.kind}{tower}{'; sees ' + sees if sees else ''}): {what}"


def lesson(model, classes, trace, loss, probs, target, description, pager: Pager) -> None:
    records, sees_by_layer = trace.records, what_each_layer_sees(model)
    towers = model.n_towers
    pager.say(f"AlexNet with {towers} tower(s), width {model.width}, input 3×{model.input_size}×{model.input_size}: "
              f"{sum(p.size for p in model.parameters()):,} parameters.")
    pager.say(f"Input: {description}, resized (shorter side {T.resize_for_crop(model.input_size)}), centre-cropped to "
              f"{model.input_size}×{model.input_size}, mean subtracted, divided by the std.")
    if towers == 2:
        pager.say("The two towers (the paper's two GPUs) each hold half of every layer. They exchange activations only "
                  "where the paper's GPUs did: conv3, fc6, fc7 and fc8 see both towers.")
    pager.say("\n" + "=" * 30 + " FORWARD PASS " + "=" * 30)
    for i, r in enumerate(records, 1):
        stats = r.statistics()
        pager.say(f"\n[{i}/{len(records)}] {describe(r, sees_by_layer)}")
        pager.say(f"  {' × '.join(map(str, r.input.shape))}  →  {' × '.join(map(str, r.output.shape))}      "
                  f"{r.arithmetic()}")
        if r.parameters:
            pager.say(f"  parameters {r.parameters:,}   multiply-accumulates {r.macs:,}")
        pager.say(f"  output: mean {stats['mean']:+.4f}  std {stats['std']:.4f}  min {stats['min']:+.4f}  "
                  f"max {stats['max']:+.4f}" + (f"  zeros {stats['zeros']:.1%}" if r.kind in ("ReLU", "MaxPool2d")
                                                 else ""))
        example = r.lrn_example()
        if example:
            e = example
            pager.say(f"  b_i = a_i / (k + α·Σ_(j in window) a_j²)^β  with k = {e['k']:g}, α = {e['alpha']:g}, "
                      f"β = {e['beta']:g}, n = {e['n']}")
            pager.say(f"  worked example, channel {e['channel']} at (y, x) = ({e['y']}, {e['x']}): a = {e['a']:.5f}; "
                      f"Σ a_j² over channels {e['window'][0]}..{e['window'][1]} = {e['sum_of_squares']:.5f}")
            pager.say(f"    s = {e['k']:g} + {e['alpha']:g}·{e['sum_of_squares']:.5f} = {e['denominator']:.6f};  "
                      f"b = {e['a']:.5f} / {e['denominator']:.6f}^{e['beta']:g} = {e['by_hand']:.6f}  "
                      f"(the layer computed {e['computed']:.6f})")
        pager.pause(r.output)

    top = np.argsort(-probs)[:5]
    pager.say("\n" + "=" * 30 + " LOSS " + "=" * 30)
    pager.say("  softmax of fc8's outputs; the 5 most likely classes: "
              + ", ".join(f"{classes[c]} {probs[c]:.1%}" for c in top))
    pager.say(f"  target class {target} ('{classes[target]}'): p = {probs[target]:.4f}, cross-entropy loss "
              f"−ln p = {loss:.4f}")
    pager.say("  ∂loss/∂logits = softmax − one-hot(target): every class pushes down except the target, which pulls up.")
    pager.pause(probs[None])

    pager.say("\n" + "=" * 30 + " BACKWARD PASS (last layer first) " + "=" * 30)
    for i, r in enumerate(reversed(records), 1):
        norms = r.gradient_norms()
        pager.say(f"\n[{i}/{len(records)}] {r.name} ({r.kind})")
        pager.say(f"  ‖∂L/∂output‖ = {_fmt(norms['output'])}   (shape {' × '.join(map(str, r.output.shape))})")
        shared = (f"; this input feeds {r.input_readers} layers, so this is the sum of their gradients"
                  if r.input_readers > 1 else "")
        pager.say(f"  ‖∂L/∂input‖  = {_fmt(norms['input'])}   (shape {' × '.join(map(str, r.input.shape))}{shared})")
        for name, p in r.module.named_parameters():
            pager.say(f"  ‖∂L/∂{name}‖ = {_fmt(norms[name])}   ({r.name}.{name}, shape {p.shape})")
        pager.pause(r.grad_output)

    pager.say("\n" + "=" * 30 + " GRADIENT FLOW " + "=" * 30)
    pager.say("  ‖∂L/∂output‖ at each layer with weights, from the loss back to the image; each # is a factor of 10^(1/6),")
    pager.say("  the longest bar the largest norm. Bars shrinking by many decades would be a vanishing gradient; growing, an")
    pager.say("  exploding one.")
    flow = [(r.name, r.gradient_norms()["output"]) for r in reversed(records) if r.parameters]
    largest = max((n for _, n in flow if n), default=1.0)
    for name, norm in flow:
        bar = "#" * int(np.clip(round(60 + 6 * np.log10(norm / largest)), 1, 60)) if norm else ""
        pager.say(f"  {name:16s} {_fmt(norm):>10s}  {bar}")
    image_grad = records[0].gradient_norms()["input"]
    pager.say(f"  {'image':16s} {_fmt(image_grad):>10s}  (how much the loss changes with the pixels)")


def _fmt(value) -> str:
    return "—" if value is None else f"{value:.3e}"


# ----- JSON and HTML ------------------------------------------------------------------------------------
def as_json(model, classes, trace, loss, probs, target, description) -> dict:
    return {"model": {"towers": model.n_towers, "width": model.width, "input_size": model.input_size,
                      "parameters": sum(p.size for p in model.parameters()), "classes": classes},
            "input": description, "target": target, "loss": loss, "probabilities": probs.tolist(),
            "layers": [r.to_json() for r in trace.records]}


def write_html(folder: Path, model, classes, trace, loss, probs, target, description) -> Path:
    """A self-contained page (HTML + PNGs, no network): per layer its numbers, a few feature maps and gradients."""
    folder.mkdir(parents=True, exist_ok=True)
    rows, sees_by_layer = [], what_each_layer_sees(model)
    for i, r in enumerate(trace.records):
        stats, norms = r.statistics(), r.gradient_norms()
        pictures = ""
        if r.output.ndim == 4:
            Image.fromarray(mg.viz.feature_maps(r.output)).save(folder / f"layer{i:02d}_forward.png")
            pictures += f'<figure><img src="layer{i:02d}_forward.png"><figcaption>output, first 8 maps</figcaption></figure>'
            if r.grad_output is not None:
                Image.fromarray(mg.viz.feature_maps(r.grad_output)).save(folder / f"layer{i:02d}_gradient.png")
                pictures += (f'<figure><img src="layer{i:02d}_gradient.png"><figcaption>∂L/∂output, first 8 '
                             "maps</figcaption></figure>")
        params = "".join(f"<li>‖∂L/∂{html.escape(n)}‖ = {_fmt(norms[n])}</li>" for n, _ in r.module.named_parameters())
        rows.append(f"""<section><h2>{i + 1}. {html.escape(describe(r, sees_by_layer))}</h2>
<p>{' × '.join(map(str, r.input.shape))} → {' × '.join(map(str, r.output.shape))} &nbsp; <code>{html.escape(r.arithmetic())}</code>
&nbsp; parameters {r.parameters:,} &nbsp; MACs {r.macs:,}</p>
<p>output mean {stats['mean']:+.4f}, std {stats['std']:.4f}, min {stats['min']:+.4f}, max {stats['max']:+.4f},
zeros {stats['zeros']:.1%}; ‖∂L/∂output‖ = {_fmt(norms['output'])}, ‖∂L/∂input‖ = {_fmt(norms['input'])}</p>
<ul>{params}</ul><div class="pictures">{pictures}</div></section>""")
    filters = [tower.conv1.weight for tower in model.towers]
    Image.fromarray(mg.viz.filter_grid(filters, zoom=4)).save(folder / "conv1_filters.png")
    top = np.argsort(-probs)[:5]
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>AlexNet, step by step</title><style>
body {{ font-family: sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }}
section {{ border-top: 1px solid #ccc; padding: 0.5em 0; }} h2 {{ font-size: 1.05em; }}
img {{ image-rendering: pixelated; border: 1px solid #ddd; }} figure {{ display: inline-block; margin: 0 1em 0 0; }}
code {{ background: #f4f4f4; padding: 0 0.3em; }}</style></head><body>
<h1>AlexNet, step by step</h1>
<p>{model.n_towers} tower(s), width {model.width}, input 3×{model.input_size}×{model.input_size},
{sum(p.size for p in model.parameters()):,} parameters. Input: {html.escape(description)}.</p>
<p>Loss for target class {target} ('{html.escape(classes[target])}'): {loss:.4f}. Most likely:
{', '.join(f"{html.escape(classes[c])} {probs[c]:.1%}" for c in top)}.</p>
<figure><img src="conv1_filters.png"><figcaption>conv1 filters, the towers side by side</figcaption></figure>
{''.join(rows)}</body></html>"""
    (folder / "index.html").write_text(page)
    return folder / "index.html"


def main(argv=None) -> int:
    args = parse_args(argv)
    model, classes, trace, loss, probs, target, description = run(args)
    if args.json:
        print(json.dumps(as_json(model, classes, trace, loss, probs, target, description), indent=1))
    else:
        lesson(model, classes, trace, loss, probs, target, description, Pager(not args.no_pause))
    if args.html:
        page = write_html(args.html, model, classes, trace, loss, probs, target, description)
        print(f"\nwrote {page}", file=sys.stderr if args.json else sys.stdout)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:   # e.g. piped into `head`: stop quietly
        sys.stderr.close()
        sys.exit(0)
