"""models/alexnet.py: it is the paper's network (counts, shapes, tower wiring) and equals a grouped PyTorch model."""
import numpy as np
import pytest

import minigrad as mg
from models.alexnet import LAYERS_WITH_WEIGHTS, AlexNet, from_grouped, to_grouped, tower_widths
from support import assert_close

# Per-layer parameters, both towers together (DESIGN.md §4).
PAPER_PARAMS = {"conv1": 34_944, "conv2": 307_456, "conv3": 885_120, "conv4": 663_936, "conv5": 442_624,
                "fc6": 37_752_832, "fc7": 16_781_312, "fc8": 4_097_000}


@pytest.fixture(scope="module")
def alexnet():
    mg.manual_seed(0)
    return AlexNet()


def params_by_layer(model):
    counts = {}
    for name, p in model.named_parameters():
        layer = name.split(".")[-2]
        counts[layer] = counts.get(layer, 0) + p.size
    return counts


def test_parameter_counts(alexnet):
    assert sum(p.size for p in alexnet.parameters()) == 60_965_224
    assert params_by_layer(alexnet) == PAPER_PARAMS
    single = AlexNet(towers=1)
    assert sum(p.size for p in single.parameters()) == 62_378_344


def test_tower_names_are_visible(alexnet):
    names = [n for n, _ in alexnet.named_parameters()]
    assert "towers.0.conv2.weight" in names and "towers.1.fc7.bias" in names and "fc8.weight" in names
    assert alexnet.towers[0].conv2.weight.shape == (128, 48, 5, 5)      # sees its own tower's 48 maps
    assert alexnet.towers[0].conv3.weight.shape == (192, 256, 3, 3)     # sees both towers' 128 + 128
    assert alexnet.towers[1].conv4.weight.shape == (192, 192, 3, 3)
    assert alexnet.towers[1].fc6.weight.shape == (2048, 9216)


def test_every_intermediate_shape_at_227(alexnet):
    seen, handles = {}, []
    for name, module in alexnet.named_modules():
        if name.startswith("towers.0.") or name == "fc8":
            handles.append(module.register_forward_hook(
                lambda m, i, o, name=name: seen.__setitem__(name.split(".")[-1], o.shape[1:])))
    with mg.no_grad():
        logits = alexnet.eval()(mg.randn(1, 3, 227, 227))
    for handle in handles:
        handle.remove()
    alexnet.train()
    assert logits.shape == (1, 1000)
    expected = {"conv1": (48, 55, 55), "pool1": (48, 27, 27), "conv2": (128, 27, 27), "pool2": (128, 13, 13),
                "conv3": (192, 13, 13), "conv4": (192, 13, 13), "conv5": (128, 13, 13), "pool5": (128, 6, 6),
                "flatten": (128 * 36,), "fc6": (2048,), "fc7": (2048,), "fc8": (1000,)}
    for layer, shape in expected.items():
        assert seen[layer] == shape, layer
    # and summary()'s table says the same
    table = {(r["layer"], r["tower"]): r for r in alexnet.layer_table()}
    for layer, shape in expected.items():
        if layer != "flatten":
            assert table[(layer, 0 if layer != "fc8" else None)]["output"] == shape, layer
    assert table[("flatten", None)]["output"] == (9216,)


def test_summary_totals(alexnet, capsys):
    text = alexnet.summary()
    assert capsys.readouterr().out.strip() == text.strip()
    assert "60,965,224" in text and "724,406,816" in text and "0.724 GMAC" in text
    sizes = [r["output"][-1] for r in alexnet.layer_table() if r["tower"] == 0 and len(r["output"]) == 3]
    assert sizes == [55, 55, 27, 27, 27, 13, 13, 13, 13, 6]   # conv1 lrn1 pool1 conv2 lrn2 pool2 conv3 conv4 conv5 pool5


def test_a_bad_input_size_is_refused_with_the_arithmetic():
    with pytest.raises(ValueError, match=r"AlexNet: the input size does not work out at conv1: \(224 − 11 \+ 2·0\)/4 \+ 1 = 54\.25"):
        AlexNet(input_size=224)
    with pytest.raises(ValueError, match=r"at pool1: \(58 − 3 \+ 2·0\)/2 \+ 1 = 28\.5"):
        AlexNet(input_size=239)          # conv1 works (58), pool1 does not
    small = AlexNet(input_size=67, width=0.25, num_classes=10)
    assert small.sizes["pool5"] == 1 and small.towers[0].fc6.weight.shape == (512, 64)
    with pytest.raises(ValueError, match=r"^AlexNet: expected images of shape \(N, 3, 67, 67\), got \(2, 3, 64, 64\)$"):
        small(mg.zeros(2, 3, 64, 64))


def test_initialisations():
    mg.manual_seed(0)
    paper = AlexNet(width=0.25, init="paper")
    for name, p in paper.named_parameters():
        layer, kind = name.split(".")[-2:]
        if kind == "bias":
            assert (p.numpy() == (1.0 if layer in ("conv2", "conv4", "conv5", "fc6", "fc7") else 0.0)).all(), name
        else:
            assert abs(p.numpy().std() - 0.01) < 0.002, name
    caffe = AlexNet(width=0.25, init="caffe")
    assert abs(caffe.towers[0].fc6.weight.numpy().std() - 0.005) < 5e-4
    assert (caffe.towers[1].conv4.bias.numpy() == 0.1).all() and (caffe.towers[1].conv3.bias.numpy() == 0).all()
    he = AlexNet(width=0.25, init="he")
    w = he.towers[0].conv2.weight
    assert abs(w.numpy().std() - np.sqrt(2 / (w.shape[1] * 25))) < 0.01
    with pytest.raises(ValueError, match="AlexNet: init must be one of paper, caffe, he, got 'xavier'"):
        AlexNet(init="xavier")


def test_grouped_layout_round_trip(alexnet):
    state = alexnet.state_dict()
    grouped = to_grouped(state)
    assert grouped["conv2.weight"].shape == (256, 48, 5, 5) and grouped["fc6.weight"].shape == (4096, 9216)
    np.testing.assert_array_equal(grouped["conv2.weight"][128:], state["towers.1.conv2.weight"].numpy())
    back = from_grouped(grouped)
    assert set(back) == set(state)
    for k in state:
        np.testing.assert_array_equal(back[k], state[k].numpy())


def test_tower_isolation():
    """Perturbing tower 0's conv2 input never changes tower 1's conv2 output (and does change tower 0's)."""
    mg.manual_seed(3)
    model = AlexNet(width=0.5).eval()
    outputs = {}
    model.towers[0].conv2.register_forward_hook(lambda m, i, o: outputs.__setitem__("conv2.0", o.numpy()))
    model.towers[1].conv2.register_forward_hook(lambda m, i, o: outputs.__setitem__("conv2.1", o.numpy()))
    images = mg.randn(1, 3, 227, 227)
    with mg.no_grad():
        model(images)
        clean = dict(outputs)
        handle = model.towers[0].pool1.register_forward_hook(lambda m, i, o: o + mg.randn(*o.shape))
        model(images)
        handle.remove()
    assert not np.allclose(outputs["conv2.0"], clean["conv2.0"])
    np.testing.assert_array_equal(outputs["conv2.1"], clean["conv2.1"])


def test_layers_that_share_an_input_run_as_one_with_the_same_results():
    """conv1 (the image) and conv3 (both towers) run as one convolution per layer pair (_side_by_side);
    with a hook on them each layer runs on its own.  Both ways give the same logits and gradients."""
    mg.manual_seed(4)
    model = AlexNet(width=0.25, input_size=67, num_classes=10, dropout=0.0).to(dtype=np.float64)
    images = mg.tensor(np.random.default_rng(0).standard_normal((3, 3, 67, 67)))
    calls = []

    layer_calls = []
    for name, module in model.named_modules():
        if isinstance(module, mg.nn.Conv2d):
            module.forward = lambda x, module=module, name=name: (layer_calls.append(name.split(".")[-1]),
                                                                    type(module).forward(module, x))[1]

    def run():
        model.zero_grad()
        layer_calls.clear()
        logits = model(images)
        mg.functional.cross_entropy(logits, [1, 2, 3]).backward()
        return logits.numpy(), {name: p.grad.numpy() for name, p in model.named_parameters()}
    together, grads_together = run()
    assert sorted(layer_calls) == ["conv2", "conv2", "conv4", "conv4", "conv5", "conv5"]   # conv1, conv3 fused
    handles = [model.towers[0].conv1.register_forward_hook(lambda m, i, o: calls.append("conv1")),
               model.towers[1].conv3.register_forward_hook(lambda m, i, o: calls.append("conv3"))]
    one_by_one, grads_one_by_one = run()
    for handle in handles:
        handle.remove()
    assert calls == ["conv1", "conv3"] and len(layer_calls) == 10     # every layer ran as itself
    np.testing.assert_allclose(together, one_by_one, rtol=1e-12)
    for name, grad in grads_together.items():
        np.testing.assert_allclose(grad, grads_one_by_one[name], rtol=1e-10, atol=1e-12, err_msg=name)


def test_an_error_inside_a_tower_names_the_path():
    model = AlexNet(width=0.25, input_size=67, num_classes=10)
    model.towers[0].conv2.weight = mg.nn.Parameter(np.zeros((32, 13, 5, 5), dtype=np.float32))
    with pytest.raises(ValueError, match=r"^towers\.0\.conv2 \(Conv2d\(12, 32, .*\)\): conv2d: expected input of "
                                         r"shape \(N, 13, H, W\)"):
        model(mg.zeros(1, 3, 67, 67))
    model = AlexNet(width=0.25, input_size=67, num_classes=10)     # conv3 runs fused with its twin: still named
    model.towers[1].conv3.weight = mg.nn.Parameter(np.zeros((48, 60, 3, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"^towers\.1\.conv3 \(Conv2d\(64, 48, .*\)\): conv2d: expected input of "
                                         r"shape \(N, 60, H, W\)"):
        model(mg.zeros(1, 3, 67, 67))


def test_summary_at_another_input_size_keeps_the_model_settings(alexnet):
    text = AlexNet(width=0.25, init="paper").summary(input_size=99)
    assert "input 3×99×99" in text and "init 'paper'" in text
    assert "32×2×2" in text          # pool5 of one tower at 99: 256·0.25/2 = 32 filters, 2×2


def test_dropout_only_in_training_mode():
    mg.manual_seed(1)
    model = AlexNet(width=0.25, input_size=67, num_classes=10)
    images = mg.randn(2, 3, 67, 67)
    with mg.no_grad():
        model.train()
        assert not np.array_equal(model(images).numpy(), model(images).numpy())
        model.eval()
        np.testing.assert_array_equal(model(images).numpy(), model(images).numpy())


# ----- PyTorch as an independent oracle ------------------------------------------------------------
def torch_alexnet(towers, num_classes=1000, dropout=0.0, width=1.0, input_size=227):
    """The grouped-convolution AlexNet in PyTorch: groups=towers on conv2/4/5, LRN per group (α·n), dropout
    before fc7 and fc8 (none by default, so that outputs can be compared).  ``width`` and ``input_size`` as
    in minigrad's AlexNet (the CPU preset: 0.25 and 67)."""
    torch = pytest.importorskip("torch")
    nn = torch.nn
    widths = tower_widths(width, towers)
    c1, c2, c3, c4, c5, f6, f7 = (towers * widths[name] for name in LAYERS_WITH_WEIGHTS)
    final = AlexNet._spatial_sizes(input_size)["pool5"]

    class GroupedAlexNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, c1, 11, 4)
            self.conv2 = nn.Conv2d(c1, c2, 5, 1, 2, groups=towers)
            self.conv3 = nn.Conv2d(c2, c3, 3, 1, 1)
            self.conv4 = nn.Conv2d(c3, c4, 3, 1, 1, groups=towers)
            self.conv5 = nn.Conv2d(c4, c5, 3, 1, 1, groups=towers)
            self.fc6, self.fc7, self.fc8 = nn.Linear(c5 * final * final, f6), nn.Linear(f6, f7), nn.Linear(f7, num_classes)
            self.lrn, self.pool = nn.LocalResponseNorm(5, alpha=1e-4 * 5, beta=0.75, k=2.0), nn.MaxPool2d(3, 2)
            self.dropout = nn.Dropout(dropout)

        def lrn_per_tower(self, x):
            return torch.cat([self.lrn(part) for part in x.chunk(towers, dim=1)], dim=1)

        def forward(self, x):
            relu = torch.relu
            x = self.pool(self.lrn_per_tower(relu(self.conv1(x))))
            x = self.pool(self.lrn_per_tower(relu(self.conv2(x))))
            x = self.pool(relu(self.conv5(relu(self.conv4(relu(self.conv3(x)))))))
            x = self.dropout(relu(self.fc6(x.flatten(1))))
            return self.fc8(self.dropout(relu(self.fc7(x))))
    return GroupedAlexNet()


@pytest.mark.parametrize("towers", [2, 1])
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-6), (np.float32, 1e-4)])
@pytest.mark.parametrize("width, input_size", [(1.0, 227), (0.25, 67)])     # the paper's network; the CPU preset
def test_logits_and_every_gradient_equal_pytorch(towers, dtype, rtol, width, input_size):
    """minigrad in float64 and float32 against the grouped PyTorch model in float64.

    The oracle runs in float64 because PyTorch's own float32 CPU path (oneDNN) is the less accurate
    of the two here: for towers=1 its conv1 weight gradient differs from its float64 result by 0.9 %
    of the largest entry, while minigrad's float32 stays within 1e-6 of float64.
    """
    torch = pytest.importorskip("torch")
    mg.manual_seed(2)
    model = AlexNet(towers=towers, dropout=0.0, width=width, input_size=input_size)
    reference = torch_alexnet(towers, width=width, input_size=input_size)
    reference.load_state_dict({k: torch.tensor(v) for k, v in to_grouped(model.state_dict(), towers).items()})
    reference = reference.to(torch.float64)
    model.to(dtype=dtype)

    rng = np.random.default_rng(0)
    images = rng.standard_normal((2, 3, input_size, input_size))
    labels = np.array([3, 917])
    logits = model(mg.tensor(images.astype(dtype)))
    mg.functional.cross_entropy(logits, labels).backward()
    torch_logits = reference(torch.tensor(images))
    torch.nn.functional.cross_entropy(torch_logits, torch.tensor(labels)).backward()

    assert logits.dtype == dtype
    assert_close(logits.numpy(), torch_logits.detach().numpy(), rtol, rtol / 10, "logits")
    ours = to_grouped({name: p.grad for name, p in model.named_parameters()}, towers)
    for name, param in reference.named_parameters():
        assert ours[name].dtype == dtype
        assert_close(ours[name], param.grad.numpy(), rtol, rtol / 10, f"gradient of {name}")
