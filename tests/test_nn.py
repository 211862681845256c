"""Module, Parameter, layers and init: registration, names, modes, state dicts, errors that name the layer."""
import numpy as np
import pytest

import minigrad as mg
import minigrad.functional as F
from minigrad import nn


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.5))
        self.classifier = nn.Linear(4 * 2 * 2, 3)

    def forward(self, x):
        return self.classifier(F.flatten(self.features(x), 1))


def test_parameters_are_registered_with_dotted_names():
    net = TinyNet()
    names = [name for name, _ in net.named_parameters()]
    assert names == ["features.0.weight", "features.0.bias", "classifier.weight", "classifier.bias"]
    assert sum(p.size for p in net.parameters()) == 4 * 3 * 9 + 4 + 16 * 3 + 3
    assert [type(c).__name__ for c in net.children()] == ["Sequential", "Linear"]
    assert all(p.requires_grad and p.is_leaf for p in net.parameters())


def test_train_and_eval_reach_every_module():
    net = TinyNet().eval()
    assert not any(m.training for m in net.modules())
    x = mg.randn(2, 3, 4, 4)
    np.testing.assert_array_equal(net(x).numpy(), net(x).numpy())   # dropout off: deterministic
    net.train()
    assert all(m.training for m in net.modules())


def test_state_dict_round_trip_and_zero_grad():
    a, b = TinyNet(), TinyNet()
    b.load_state_dict(a.state_dict())
    x = mg.randn(2, 3, 4, 4)
    np.testing.assert_array_equal(a.eval()(x).numpy(), b.eval()(x).numpy())
    b(x).sum().backward()
    assert all(p.grad is not None for p in b.parameters())
    b.zero_grad()
    assert all(p.grad is None for p in b.parameters())
    c = TinyNet()
    c.load_state_dict({k: v.numpy() for k, v in a.state_dict().items()})    # plain arrays work too
    np.testing.assert_array_equal(a.eval()(x).numpy(), c.eval()(x).numpy())


def test_load_state_dict_names_every_problem():
    net, state = TinyNet(), TinyNet().state_dict()
    state["extra.weight"] = np.zeros(1)
    del state["classifier.bias"]
    state["features.0.weight"] = np.zeros((8, 3, 3, 3))
    with pytest.raises(ValueError) as info:
        net.load_state_dict(state)
    message = str(info.value)
    assert "missing keys: classifier.bias" in message
    assert "unexpected keys: extra.weight" in message
    assert "features.0.weight: shape (8, 3, 3, 3) in the state dict, (4, 3, 3, 3) in the model" in message


def test_a_failed_load_changes_nothing():
    net = TinyNet()
    before = {k: v.numpy() for k, v in net.state_dict().items()}
    state = TinyNet().state_dict()
    state["classifier.weight"] = np.zeros((1, 1))
    with pytest.raises(ValueError):
        net.load_state_dict(state)
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), before[k])


def test_a_layer_given_the_wrong_input_names_itself_and_both_shapes():
    conv = nn.Conv2d(48, 128, 5, padding=2)
    with pytest.raises(ValueError, match=r"^Conv2d\(48, 128, kernel_size=\(5, 5\), stride=\(1, 1\), padding=\(2, 2\)\): "
                                         r"conv2d: expected input of shape \(N, 48, H, W\) .* got \(2, 96, 27, 27\)"):
        conv(mg.zeros(2, 96, 27, 27))
    with pytest.raises(ValueError, match=r"got input shape \(96, 27, 27\)"):
        conv(mg.zeros(96, 27, 27))


def test_errors_from_inside_a_network_carry_the_path_to_the_layer():
    net = TinyNet()
    with pytest.raises(ValueError, match=r"^features\.0 \(Conv2d\(3, 4, .*\)\): conv2d: expected input of shape \(N, 3, H, W\)"):
        net(mg.zeros(2, 5, 4, 4))
    with pytest.raises(ValueError, match=r"^classifier \(Linear\(16, 3\)\): linear: expected input of shape \(N, 16\)"):
        net(mg.zeros(2, 3, 6, 6))


def test_a_block_or_network_that_raises_itself_is_named_without_its_whole_tree():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            if x.shape[-1] < 3:
                raise ValueError("block: too small")
            return self.conv(x)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = Block()

        def forward(self, x):
            if x.ndim != 4:
                raise ValueError("net: expected 4 dimensions")
            return self.block(x)

    with pytest.raises(ValueError, match=r"^block \(Block\): block: too small$"):
        Net()(mg.zeros(1, 3, 2, 2))
    with pytest.raises(ValueError, match=r"^Net: net: expected 4 dimensions$"):
        Net()(mg.zeros(3, 2, 2))
    with pytest.raises(ValueError, match=r"^block\.conv \(Conv2d\(3, 4, .*\)\): conv2d: expected input"):
        Net()(mg.zeros(1, 5, 4, 4))


def test_repr_shows_the_tree():
    text = repr(TinyNet())
    assert "(features): Sequential(" in text and "(0): Conv2d(3, 4, kernel_size=(3, 3)" in text
    assert "(classifier): Linear(16, 3)" in text and "Dropout(p=0.5)" in text


def test_module_without_super_init_says_so():
    class Forgetful(nn.Module):
        def __init__(self):
            self.layer = nn.Linear(2, 2)
    with pytest.raises(RuntimeError, match=r"Forgetful.__init__ must call super\(\).__init__\(\)"):
        Forgetful()


def test_init_functions():
    mg.manual_seed(0)
    w = nn.Parameter(np.empty((400, 300), dtype=np.float32))
    nn.init.normal_(w, std=0.01)
    assert w.dtype == np.float32 and abs(w.numpy().std() - 0.01) < 2e-4 and abs(w.numpy().mean()) < 1e-4
    nn.init.kaiming_normal_(w)
    assert abs(w.numpy().std() - np.sqrt(2 / 300)) < 0.002
    nn.init.constant_(w, 1.0)
    assert (w.numpy() == 1).all()
    layer = nn.Linear(3, 2)
    state = layer.state_dict()
    nn.init.constant_(layer.bias, 1.0)
    nn.init.normal_(layer.weight)
    assert (state["bias"].numpy() == 1).all()                # filled in place: the state dict sees it
    np.testing.assert_array_equal(state["weight"].numpy(), layer.weight.numpy())
    assert nn.init.fan_in(nn.Conv2d(96, 256, 5, groups=2).weight) == 48 * 25


def test_layers_match_their_functions():
    mg.manual_seed(0)
    x = mg.randn(2, 4, 7, 7)
    conv = nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2)
    np.testing.assert_array_equal(conv(x).numpy(), F.conv2d(x, conv.weight, conv.bias, 2, 1, 2).numpy())
    lrn = nn.LocalResponseNorm(3, 1.0, 0.5, 1.0)
    np.testing.assert_array_equal(lrn(x).numpy(), F.local_response_norm(x, 3, 1.0, 0.5, 1.0).numpy())
    np.testing.assert_array_equal(nn.MaxPool2d(3, 2)(x).numpy(), F.max_pool2d(x, 3, 2).numpy())
    assert nn.Flatten()(x).shape == (2, 4 * 49)
    assert conv.bias.numpy().sum() == 0 and conv.weight.shape == (6, 2, 3, 3)


def test_to_casts_parameters_and_gradients():
    net = TinyNet()
    net(mg.randn(2, 3, 4, 4)).sum().backward()
    net.to(dtype=mg.float64)
    assert all(p.dtype == np.float64 and p.grad.dtype == np.float64 for p in net.parameters())
    assert net(mg.randn(2, 3, 4, 4, dtype=mg.float64)).dtype == np.float64


def test_a_shared_parameter_is_listed_and_updated_once():
    shared = nn.Linear(2, 2)
    net = nn.Sequential(shared, nn.ReLU(), shared)
    assert [n for n, _ in net.named_parameters()] == ["0.weight", "0.bias"]
    before = shared.weight.numpy()
    shared.weight.grad = mg.tensor(np.ones((2, 2), dtype=np.float32))
    mg.optim.SGD(list(net.parameters()) + [shared.weight], lr=0.1, momentum=0.0, weight_decay=0.0).step()
    np.testing.assert_allclose(shared.weight.numpy(), before - 0.1, rtol=1e-6)


def test_reassigning_a_child_keeps_its_place():
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    seq[0].weight.data[...] = 0
    setattr(seq, "0", nn.Linear(2, 3))
    assert [name for name, _ in seq.named_children()] == ["0", "1", "2"]
    assert seq(mg.ones(4, 2)).shape == (4, 1)


def test_parameters_cannot_be_replaced_by_plain_tensors_and_del_unregisters():
    layer = nn.Linear(2, 2)
    with pytest.raises(TypeError, match=r"Linear.weight is a Parameter; assign a Parameter"):
        layer.weight = mg.randn(2, 2, requires_grad=True)
    del layer.bias
    assert [n for n, _ in layer.named_parameters()] == ["weight"]
    net = TinyNet()
    del net.classifier
    assert all(not n.startswith("classifier") for n, _ in net.named_parameters())


def test_numpy_integers_are_fine_as_kernel_settings():
    y = F.conv2d(mg.zeros(1, 1, 5, 5), mg.zeros(1, 1, 3, 3), stride=np.int64(2), padding=np.int32(1))
    assert y.shape == (1, 1, 3, 3)
