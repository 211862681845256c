"""examples/step_through.py, minigrad/trace.py and minigrad/viz.py: the lesson's numbers are the network's numbers."""
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import minigrad as mg
from minigrad.trace import Trace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
import gradcheck_tour  # noqa: E402
import step_through  # noqa: E402

SCRIPT = [sys.executable, str(ROOT / "examples" / "step_through.py")]


@pytest.fixture(scope="module", params=[2, 1], ids=["two-towers", "one-tower"])
def lesson(request):
    """The full network at 227, run once per tower count: (args, results, printed text)."""
    args = step_through.parse_args(["--no-pause", "--towers", str(request.param)])
    results = step_through.run(args)
    import io
    import contextlib
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        step_through.lesson(*results, step_through.Pager(False))
    return args, results, out.getvalue()


def test_forward_shapes_and_arithmetic_match_the_summary_and_the_tensors(lesson):
    _, (model, classes, trace, *_), text = lesson
    table = {(r["layer"], r["tower"]): r for r in model.layer_table()}
    names = {"conv1", "conv2", "conv3", "conv4", "conv5", "pool1", "pool2", "pool5", "lrn1", "lrn2", "fc6", "fc7", "fc8"}
    checked = 0
    for r in trace.records:
        layer = r.name.split(".")[-1]
        printed = f"{' × '.join(map(str, r.input.shape))}  →  {' × '.join(map(str, r.output.shape))}"  # the real tensors'
        assert printed in text, r.name                     # (the arithmetic is checked as literal text below)
        if layer in names:
            row = table[(layer, r.tower)]
            assert tuple(r.output.shape[1:]) == row["output"], r.name
            assert r.parameters == row["params"] and r.macs == row["macs"], r.name
            checked += 1
    assert checked == len([row for row in model.layer_table() if row["layer"] in names])
    assert "(227 − 11 + 2·0)/4 + 1 = 55" in text and "(55 − 3 + 2·0)/2 + 1 = 27" in text
    assert "(27 − 5 + 2·2)/1 + 1 = 27" in text and "(13 − 3 + 2·1)/1 + 1 = 13" in text
    assert "(27 − 3 + 2·0)/2 + 1 = 13" in text and "(13 − 3 + 2·0)/2 + 1 = 6" in text     # pool2, pool5
    # The paper's widths (conv5 256, fc6 and fc7 4096) split over the towers; the fc layers see every tower.
    per_tower = 256 // model.n_towers, 4096 // model.n_towers
    assert f"{per_tower[0]}×6×6 = {per_tower[0] * 36}" in text            # a tower's pool5, flattened
    assert f"9216 inputs → {per_tower[1]} units" in text and f"4096 inputs → {per_tower[1]} units" in text
    assert f"4096 inputs → {len(classes)} units" in text                  # fc8
    assert f"{sum(p.size for p in model.parameters()):,} parameters" in text
    if model.n_towers == 2:
        assert "towers.0.conv3 (Conv2d, tower 0; sees both towers)" in text and "sees both towers):" in text
    else:                                              # one tower: nothing crosses, conv3 and the fcs see their own
        assert "sees both towers" not in text and "towers.0.conv3 (Conv2d, tower 0; sees its own tower)" in text
    assert "towers.0.conv1 (Conv2d, tower 0; sees the image)" in text


def test_every_parameter_appears_with_its_gradient_norm(lesson):
    _, (model, *_), text = lesson
    for name, p in model.named_parameters():
        match = re.search(rf"‖∂L/∂\w+‖ = ([0-9.e+-]+)   \({re.escape(name)}, shape", text)
        assert match, name
        assert float(match.group(1)) == pytest.approx(np.linalg.norm(p.grad.numpy().astype(np.float64)), rel=1e-3)


def test_the_lrn_worked_example_is_the_formula(lesson):
    _, (_, _, trace, *_), _ = lesson
    examples = [r.lrn_example() for r in trace.records if r.kind == "LocalResponseNorm"]
    assert examples
    for e in examples:
        window = e["window"]
        assert window[1] - window[0] <= 4 and window[0] <= e["channel"] <= window[1]
        assert e["by_hand"] == pytest.approx(e["computed"], rel=1e-5)


def test_json_is_valid_and_complete(lesson, capsys):
    args, results, _ = lesson
    data = json.loads(json.dumps(step_through.as_json(*results)))
    model, _, trace = results[:3]
    assert len(data["layers"]) == len(trace.records)
    assert data["model"]["parameters"] == sum(p.size for p in model.parameters())
    listed = {f"{layer['name']}.{key}" for layer in data["layers"] for key in layer["gradient_norms"]
              if key not in ("output", "input")}
    assert listed == {name for name, _ in model.named_parameters()}
    assert all(layer["gradient_norms"]["output"] > 0 for layer in data["layers"])


def test_html_page_and_pictures(lesson, tmp_path):
    _, results, _ = lesson
    page = step_through.write_html(tmp_path, *results)
    text = page.read_text()
    pictures = re.findall(r'src="([^"]+\.png)"', text)
    assert len(pictures) > 20 and "http" not in text.replace("<!doctype html>", "")
    for name in pictures:
        with Image.open(tmp_path / name) as image:
            assert image.size[0] >= 50 and image.size[1] >= 30, name
    assert "towers.0.conv1" in text and "‖∂L/∂weight‖" in text


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
def test_the_page_renders_in_a_browser(lesson, tmp_path):
    _, results, _ = lesson
    page = step_through.write_html(tmp_path / "page", *results)
    shot = tmp_path / "shot.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
                    f"--screenshot={shot}", "--window-size=1200,2000", page.as_uri()], capture_output=True, timeout=120)
    with Image.open(shot) as image:
        pixels = np.asarray(image.convert("L"))
    assert pixels.shape == (2000, 1200) and pixels.std() > 10     # not a blank page


def test_interactive_mode_steps_prints_and_quits():
    result = subprocess.run(SCRIPT + ["--preset", "cpu"], input="\n\np\nq\n", capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "[1/" in out and "[3/" in out and "[4/" not in out       # two Enters: layers 1 → 2 → 3
    assert "tensor[0, :2, :4, :6] of shape (1, 12, 15, 15)" in out        # layer 3 (lrn1 of tower 0) at 67
    assert out.rstrip().endswith("Stopped.")


def test_json_flag_prints_only_json():
    result = subprocess.run(SCRIPT + ["--preset", "cpu", "--json"], capture_output=True, text=True, timeout=120)
    data = json.loads(result.stdout)
    assert data["model"]["width"] == 0.25 and data["layers"][0]["name"] == "towers.0.conv1"


def test_a_checkpoint_from_training_is_stepped_through(tmp_path):
    import train_alexnet
    from minigrad.data import make_builtin_dataset
    data = make_builtin_dataset(tmp_path / "data", train_per_class=4, val_per_class=2, quiet=True)
    assert train_alexnet.main(["--preset", "tiny", "--epochs", "1", "--data", str(data), "--out", str(tmp_path / "run"),
                               "--workers", "0", "--cache", "off"]) == 0
    result = subprocess.run(SCRIPT + ["--checkpoint", str(tmp_path / "run" / "best.npz"), "--no-pause",
                                      "--target", "circle"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "width 0.125" in result.stdout and "target class 1 ('circle')" in result.stdout


# ----- trace and viz on small graphs ---------------------------------------------------------------------
def test_dot_contains_every_op_of_a_small_graph(tmp_path):
    x = mg.randn(2, 3, requires_grad=True)
    w = mg.randn(3, 4, requires_grad=True)
    y = (mg.functional.relu(x @ w) * 2).exp().sum()
    dot = mg.viz.to_dot(y)
    for op in ("MatMul", "ReLU", "Mul", "Exp", "Sum"):
        assert f'label="{op}"' in dot, op
    assert dot.count("shape=oval") == 4 and "(2, 3)" in dot and "(3, 4)" in dot   # out, x, w and the constant 2
    picture = tmp_path / "graph.png"
    note = mg.viz.render_dot(dot, picture)
    if shutil.which("dot") is None:
        assert "Graphviz's `dot` program is not installed" in note and not picture.exists()
    else:
        assert note is None and picture.stat().st_size > 0


def test_trace_records_execution_order_and_gradients():
    net = mg.nn.Sequential(mg.nn.Linear(3, 4), mg.nn.ReLU(), mg.nn.Linear(4, 2))
    x = mg.randn(5, 3, requires_grad=True)
    with Trace(net) as trace:
        net(x).sum().backward()
    assert [r.name for r in trace.records] == ["0", "1", "2"]
    last = trace.records[-1]
    np.testing.assert_allclose(last.grad_output, np.ones((5, 2)))
    np.testing.assert_allclose(trace.records[0].grad_input, x.grad.numpy())
    assert all(not m._forward_hooks for m in net.modules())          # hooks removed on exit


def test_feature_maps_and_filter_grid_sizes():
    maps = mg.viz.feature_maps(np.random.default_rng(0).standard_normal((1, 10, 6, 6)), count=8, zoom=2)
    assert maps.dtype == np.uint8 and maps.shape == (2 * (12 + 2) + 2, 4 * (12 + 2) + 2)
    grid = mg.viz.filter_grid([np.zeros((4, 3, 5, 5)), np.ones((4, 3, 5, 5))], zoom=2)
    assert grid.shape[2] == 3 and grid.shape[1] > 2 * grid.shape[0]


def test_gradcheck_tour_runs_and_catches_the_planted_bug(capsys):
    gradcheck_tour.main()
    out = capsys.readouterr().out
    for layer in ("conv2d", "max_pool2d", "local_response_norm", "dropout", "linear", "cross_entropy"):
        assert re.search(rf"^{layer} — .*: ok$", out, re.MULTILINE), layer
    assert "buggy LRN, α = 1, k = 1 — gradcheck (rtol 1e-3): caught; a float32-style check (rtol 1e-2): caught" in out
    assert "buggy LRN, α = 0.0001, k = 2 — gradcheck (rtol 1e-3): caught; a float32-style check (rtol 1e-2): MISSED" in out


def test_arithmetic_shows_floors_and_each_axis_when_they_differ():
    conv = mg.nn.Conv2d(1, 1, 3, stride=(2, 1), padding=(1, 0))
    with Trace(conv) as trace:
        conv(mg.zeros(1, 1, 8, 8))
    assert trace.records[0].arithmetic() == "height ⌊(8 − 3 + 2·1)/2⌋ + 1 = 4;  width (8 − 3 + 2·0)/1 + 1 = 6"


def test_shared_inputs_are_labelled_and_no_hook_stays_behind():
    a, b = mg.nn.Linear(3, 2), mg.nn.Linear(3, 2)
    x = mg.randn(4, 3, requires_grad=True)

    class Both(mg.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = a, b

        def forward(self, x):
            return self.a(x).sum() + 100 * self.b(x).sum()
    with Trace(Both()) as trace:
        Both()(x).backward()
    assert [r.input_readers for r in trace.records] == [2, 2]
    assert x._hooks == [] and all(not m._forward_hooks for m in (a, b))
    before = trace.records[0].grad_input.copy()
    (a(x) * 3).sum().backward()                                  # a later pass leaves the record alone
    np.testing.assert_array_equal(trace.records[0].grad_input, before)


def test_pager_reprompts_on_unknown_keys_and_prints_the_probabilities_at_the_loss():
    keys = "help\n" + "\n" * 45 + "p\nq\n"          # 45 layers forward, then the loss step: print, quit
    result = subprocess.run(SCRIPT + ["--preset", "cpu"], input=keys, capture_output=True, text=True, timeout=120)
    out = result.stdout
    assert result.returncode == 0 and "keys: Enter = next step" in out
    assert "[45/45]" in out and "LOSS" in out and "BACKWARD" not in out
    assert "tensor[0, :12] of shape (1, 10)" in out and out.rstrip().endswith("Stopped.")


def test_gradient_flow_bars_are_relative_to_the_largest_norm(lesson):
    _, _, text = lesson
    flow = text.split("GRADIENT FLOW")[1]
    bars = [len(line.split()[-1]) for line in flow.splitlines() if line.strip().endswith("#")]
    assert max(bars) == 60 and min(bars) >= 1 and len(set(bars)) > 1


def test_inputs_made_and_dropped_inside_the_pass_are_not_counted_as_shared():
    """Each ReLU below reads a fresh tensor that nothing else keeps; Python may give a later one the id() of
    a freed one, and the trace must still count one reader per input."""
    relu = mg.nn.ReLU()

    class Many(mg.nn.Module):
        def __init__(self):
            super().__init__()
            self.relu = relu

        def forward(self, x):
            return [self.relu(mg.randn(2, 4)).sum().item() for _ in range(50)]
    many = Many()
    with mg.no_grad(), Trace(many) as trace:
        many(None)
    assert len(trace.records) == 50 and {r.input_readers for r in trace.records} == {1}
