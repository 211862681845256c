"""Integration: a small CNN built from minigrad's layers learns a generated image task."""
import numpy as np

import minigrad as mg
import minigrad.functional as F
from minigrad import nn


def bars(n, rng):
    """8×8 images of one bright bar on noise; the class is its direction (—, |, \\, /), its position random."""
    images = rng.normal(0, 0.3, (n, 1, 8, 8)).astype(np.float32)
    labels = rng.integers(0, 4, n)
    for img, label in zip(images, labels):
        r, c = rng.integers(1, 7, 2)
        for t in range(-2, 3):
            y, x = [(r, c + t), (r + t, c), (r + t, c + t), (r + t, c - t)][label]
            if 0 <= y < 8 and 0 <= x < 8:
                img[0, y, x] += 2.0
    return images, labels


def test_a_two_layer_cnn_learns_bar_directions():
    mg.manual_seed(0)
    rng = np.random.default_rng(0)
    x_train, y_train = bars(512, rng)
    x_test, y_test = bars(256, rng)
    net = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.LocalResponseNorm(5, 1e-2), nn.MaxPool2d(3, 2),
                        nn.Conv2d(16, 16, 3, padding=1, groups=2), nn.ReLU(), nn.Flatten(), nn.Dropout(0.2),
                        nn.Linear(16 * 3 * 3, 4))
    opt = mg.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    losses = []
    for _epoch in range(6):
        order = rng.permutation(len(y_train))
        for start in range(0, len(order), 32):
            batch = order[start:start + 32]
            loss = F.cross_entropy(net(mg.tensor(x_train[batch])), y_train[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    net.eval()
    with mg.no_grad():
        accuracy = (net(mg.tensor(x_test)).argmax(axis=1).numpy() == y_test).mean()
    assert np.mean(losses[-16:]) < 0.5 * np.mean(losses[:16])
    assert accuracy > 0.9, accuracy          # chance is 0.25
