"""minigrad.data: transforms, ImageFolder (with broken files), the cache, the loader and the built-in dataset."""
import io
import json
import multiprocessing
import warnings

import numpy as np
import pytest
from PIL import Image

from minigrad.data import (DataLoader, ImageCache, ImageFolder, Preprocess, UnreadableImage, image_statistics,
                           make_builtin_dataset, transforms as T)
from minigrad.data.loader import Lookahead


# ----- transforms ------------------------------------------------------------------------------------
def test_center_square_uses_jpeg_draft_and_keeps_the_centre(monkeypatch):
    from PIL import JpegImagePlugin
    buffer = io.BytesIO()
    pixels = np.zeros((400, 800, 3), np.uint8)
    pixels[:, 200:600] = 255                       # the central square is white, the sides black
    Image.fromarray(pixels).save(buffer, "JPEG", quality=95)
    requests = []
    original = JpegImagePlugin.JpegImageFile.draft
    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft",
                        lambda self, mode, size: requests.append(size) or original(self, mode, size))
    square = T.center_square(Image.open(io.BytesIO(buffer.getvalue())), 100)
    assert requests == [(200, 100)]               # asked the decoder for 1/4 scale
    assert square.shape == (100, 100, 3) and square.dtype == np.uint8
    assert square[5:-5, 5:-5].min() > 200         # only the central (white) square was kept


def test_unusual_images_become_sensible_rgb():
    ramp = (np.linspace(0, 65535, 64 * 64).reshape(64, 64)).astype(np.uint16)
    sixteen = Image.fromarray(ramp)               # a 16-bit grey ramp (mode I;16)
    rgb = T.center_square(sixteen, 32).astype(float)
    assert abs(rgb.mean() - 127.5) < 8 and rgb.min() < 30 and rgb.max() > 225      # scaled, not clipped to white
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 255                                                              # red, but fully transparent
    assert (T.center_square(Image.fromarray(rgba, "RGBA"), 8) == 255).all()        # on white
    strip = Image.fromarray(np.full((8, 40000, 3), 90, np.uint8))                   # an extreme aspect ratio
    assert T.center_square(strip, 256).shape == (256, 256, 3)                       # resamples only the centre


def test_center_crop_and_ten_windows_geometry():
    image = np.arange(8 * 10).reshape(8, 10, 1)
    np.testing.assert_array_equal(T.center_crop(image, 4), image[2:6, 3:7])
    crops = [T.crop(image, window, mirrored) for window, mirrored in T.ten_windows(8, 10, 4)]
    assert len(crops) == 10 and all(c.shape == (4, 4, 1) for c in crops)
    corners = [image[:4, :4], image[:4, 6:], image[4:, :4], image[4:, 6:], image[2:6, 3:7]]
    for crop, expected in zip(crops, corners + [c[:, ::-1] for c in corners]):
        np.testing.assert_array_equal(crop, expected)


def test_random_windows_stay_inside_and_reach_every_position():
    image = np.arange(6 * 6).reshape(6, 6, 1)
    rng = np.random.default_rng(0)
    corners = set()
    for _ in range(400):
        crop = T.crop(image, T.random_window(6, 6, 4, rng))
        top, left = divmod(int(crop[0, 0, 0]), 6)
        assert crop.shape == (4, 4, 1)
        np.testing.assert_array_equal(crop, image[top:top + 4, left:left + 4])
        corners.add((top, left))
    assert corners == {(t, l) for t in range(3) for l in range(3)}


def test_a_mirrored_crop_is_flipped_left_and_right():
    image = np.arange(6).reshape(1, 6, 1)
    whole = (slice(0, 1), slice(0, 6))
    np.testing.assert_array_equal(T.crop(image, whole, mirrored=True)[0, :, 0], [5, 4, 3, 2, 1, 0])
    np.testing.assert_array_equal(T.crop(image, whole), image)


def test_pca_colour_noise_has_the_papers_statistics():
    rng = np.random.default_rng(0)
    pixels = rng.multivariate_normal([0.5, 0.4, 0.3], [[0.04, 0.02, 0.01], [0.02, 0.03, 0.01], [0.01, 0.01, 0.02]], 20000)
    eigenvalues, eigenvectors = T.pca_of_covariance(np.cov(pixels.T))
    np.testing.assert_allclose(eigenvectors @ np.diag(eigenvalues) @ eigenvectors.T, np.cov(pixels.T), atol=2e-3)
    assert (np.diff(eigenvalues) <= 0).all()
    shifts = np.array([T.pca_colour_shift(eigenvalues, eigenvectors, rng) for _ in range(20000)])
    assert shifts.shape == (20000, 3)                             # one colour per image
    # shift = P·(α ⊙ λ), α ~ N(0, 0.1²)  =>  covariance P·diag(0.01·λ²)·Pᵀ
    expected = eigenvectors @ np.diag(0.01 * eigenvalues ** 2) @ eigenvectors.T
    np.testing.assert_allclose(np.cov(shifts.T), expected, rtol=0.1, atol=1e-7)
    assert np.abs(shifts.mean(axis=0)).max() < 3e-4


def test_preprocess_modes():
    image = np.random.default_rng(0).integers(0, 256, (20, 20, 3), dtype=np.uint8)
    mean, std = np.array([0.5, 0.5, 0.5], np.float32), np.array([0.25, 0.25, 0.25], np.float32)
    centre = Preprocess(16, mean, std, "eval")(image, None)
    assert centre.shape == (3, 16, 16) and centre.dtype == np.float32
    f = ((image / 255 - mean) / std).transpose(2, 0, 1)          # written out: the corners, the centre, mirrored
    np.testing.assert_allclose(centre, f[:, 2:18, 2:18], rtol=1e-5, atol=1e-5)
    ten = Preprocess(16, mean, std, "ten-crop")(image, None)
    crops = [f[:, 0:16, 0:16], f[:, 0:16, 4:20], f[:, 4:20, 0:16], f[:, 4:20, 4:20], f[:, 2:18, 2:18]]
    np.testing.assert_allclose(ten, np.stack(crops + [c[:, :, ::-1] for c in crops]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mean", [np.array([0.5, 0.4, 0.3], np.float32),                    # per channel
                                  np.random.default_rng(5).random((8, 8, 3)).astype(np.float32)])   # per pixel
def test_training_flips_half_of_the_images(mean):
    image = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    std = np.array([0.2, 0.25, 0.3], np.float32)
    plain = ((image / 255 - mean) / std).transpose(2, 0, 1)   # the formula, not the code under test
    mirrored = plain[:, :, ::-1]
    train = Preprocess(8, mean, std, "train")          # crop = the whole image, so only the flip varies
    outputs = [train(image, np.random.default_rng(s)) for s in range(400)]
    flipped = [np.allclose(out, mirrored, atol=1e-5) for out in outputs]
    same = [np.allclose(out, plain, atol=1e-5) for out in outputs]
    assert all(f != k for f, k in zip(flipped, same))  # each output is exactly one of the two
    assert 0.4 < np.mean(flipped) < 0.6
    kept = next(out for out, f in zip(outputs, flipped) if not f)
    for out, f in zip(outputs, flipped):               # and a mirrored one is the other reversed, to the bit
        np.testing.assert_array_equal(out, kept[:, :, ::-1] if f else kept)


def test_a_batch_is_its_images_preprocessed_one_by_one():
    """The images of a batch do not mix: each comes out as it does alone, with its own generator, in every mode,
    with a per-pixel mean and with images of different sizes (a per-channel mean).  The values themselves are
    checked against the formula in test_training_preprocessing_draws_window_flip_and_colour_in_that_order and
    test_training_flips_half_of_the_images."""
    rng = np.random.default_rng(0)
    std = np.array([0.2, 0.25, 0.3], np.float32)
    pca = (np.array([0.08, 0.02, 0.005], np.float32), np.linalg.qr(rng.normal(size=(3, 3)))[0].astype(np.float32))
    square = [rng.integers(0, 256, (12, 12, 3), dtype=np.uint8) for _ in range(6)]
    sizes = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(12, 9), (8, 20), (9, 9)]]
    for images, mean in [(square, rng.random((12, 12, 3)).astype(np.float32)), (sizes, np.array([0.5, 0.4, 0.3]))]:
        for mode, colour in [("train", pca), ("train", None), ("eval", None), ("ten-crop", None)]:
            pre = Preprocess(8, mean, std, mode, colour)
            together = pre.batch(images, [np.random.default_rng([1, i]) for i in range(len(images))])
            apart = np.stack([pre(image, np.random.default_rng([1, i])) for i, image in enumerate(images)])
            assert together.dtype == np.float32 and together.shape == ((len(images), 10) if mode == "ten-crop" else
                                                                        (len(images),)) + (3, 8, 8)
            np.testing.assert_array_equal(together, apart)
    # each image's choices come from its own generator: the same seed gives the same crop, another seed another
    train = Preprocess(8, np.full(3, 0.5, np.float32), std, "train", pca)
    first, again, other = train.batch([square[0]] * 3, [np.random.default_rng(s) for s in (7, 7, 8)])
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_training_preprocessing_draws_window_flip_and_colour_in_that_order():
    """The whole training pipeline written out (the formula, not the code under test) with the draws a
    seeded generator makes in the documented order: window (top, then left), flip, colour noise."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (12, 11, 3), dtype=np.uint8)
    mean, std = np.array([0.5, 0.4, 0.3], np.float32), np.array([0.2, 0.25, 0.3], np.float32)
    pca = (np.array([0.08, 0.02, 0.005], np.float32), np.linalg.qr(rng.normal(size=(3, 3)))[0].astype(np.float32))
    pre = Preprocess(8, mean, std, "train", pca)
    flips = 0
    for seed in range(40):
        draws = np.random.default_rng(seed)
        top, left = draws.integers(0, 12 - 8 + 1), draws.integers(0, 11 - 8 + 1)
        mirrored = draws.random() < 0.5
        shift = pca[1] @ (draws.normal(0.0, 0.1, 3).astype(np.float32) * pca[0])
        expected = (image / 255 - mean)[top:top + 8, left:left + 8]
        expected = (expected[:, ::-1] if mirrored else expected) + shift
        np.testing.assert_allclose(pre(image, np.random.default_rng(seed)), (expected / std).transpose(2, 0, 1),
                                   rtol=1e-5, atol=1e-5)
        flips += mirrored
    assert 5 < flips < 35                               # both ways occurred


def test_preprocess_refuses_what_it_cannot_use():
    std = np.full(3, 0.25, np.float32)
    with pytest.raises(ValueError, match="mode must be one of train, eval, ten-crop, got 'tencrop'"):
        Preprocess(8, np.zeros(3), std, "tencrop")
    with pytest.raises(ValueError, match=r"mean must be 3 values \(per channel\) or \(S, S, 3\) \(per pixel\), "
                                         r"got shape \(4,\)"):
        Preprocess(8, np.zeros(4), std)
    with pytest.raises(ValueError, match=r"std must be 3 values \(per channel\), got shape \(2,\)"):
        Preprocess(8, np.zeros(3), np.ones(2))
    image = np.zeros((12, 12, 3), np.uint8)
    with pytest.raises(ValueError, match="an image is 12×12, the per-pixel mean 16×16: they must be the same size"):
        Preprocess(8, np.zeros((16, 16, 3)), std, "eval")(image, None)
    # a list, or a mean shaped (1, 1, 3), is per channel, as it always broadcast
    for mean in ([0.5, 0.5, 0.5], np.full((1, 1, 3), 0.5)):
        np.testing.assert_allclose(Preprocess(8, mean, std, "eval")(image, None), np.full((3, 8, 8), -2.0))


def test_training_colour_noise_shifts_each_image_by_one_colour():
    image = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    mean, std = np.array([0.5, 0.4, 0.3], np.float32), np.array([0.2, 0.25, 0.3], np.float32)
    pca = (np.array([0.08, 0.02, 0.005], np.float32), np.linalg.qr(np.random.default_rng(1).normal(size=(3, 3)))[0].astype(np.float32))
    plain = ((image / 255 - mean) / std).transpose(2, 0, 1)   # the formula, not the code under test
    noisy = Preprocess(8, mean, std, "train", pca, flip=False)(image, np.random.default_rng(3))
    shift = (noisy - plain) * std[:, None, None]                # back in [0, 1] pixel units
    assert np.abs(shift).max() > 1e-4                                      # something was added
    np.testing.assert_allclose(shift, shift[:, :1, :1] * np.ones_like(shift), atol=1e-5)   # the same for every pixel
    assert np.abs(shift[:, 0, 0]).max() < 0.1                   # a small colour shift (α·λ, α ~ N(0, 0.1))
    # Over many images the shift P·(α ⊙ λ) has covariance P·diag(0.01·λ²)·Pᵀ: the eigenvectors are used.
    shifts = np.array([(Preprocess(8, mean, std, "train", pca, flip=False)(image, np.random.default_rng(seed))[:, 0, 0]
                        - plain[:, 0, 0]) * std for seed in range(4000)])
    expected = pca[1] @ np.diag(0.01 * pca[0] ** 2) @ pca[1].T
    np.testing.assert_allclose(np.cov(shifts.T), expected, rtol=0.15, atol=2e-3 * np.abs(expected).max())


# ----- a tiny image tree with a PNG, a corrupt JPEG and a text file ------------------------------------
@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "images"
    rng = np.random.default_rng(0)
    for label in ("cats", "dogs"):
        (root / label).mkdir(parents=True)
        for i in range(5):
            Image.fromarray(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(root / label / f"{i}.jpg")
    Image.fromarray(rng.integers(0, 256, (30, 30, 3), dtype=np.uint8)).save(root / "dogs" / "extra.png")
    data = (root / "cats" / "0.jpg").read_bytes()
    (root / "cats" / "broken.jpg").write_bytes(data[: len(data) // 3])       # truncated
    (root / "dogs" / "notes.txt").write_text("not an image")
    (root / "dogs" / ".hidden.jpg").write_text("ignored")
    return root


def test_image_folder_finds_classes_and_files(tree):
    folder = ImageFolder(tree, size=32)
    assert folder.classes == ["cats", "dogs"]
    assert len(folder) == 6 + 7          # hidden files are not counted
    assert sorted(set(folder.labels.tolist())) == [0, 1]
    png = [i for i in range(len(folder)) if folder.path(i).endswith(".png")][0]
    assert folder.load(png).shape == (32, 32, 3)
    broken = [i for i in range(len(folder)) if folder.path(i).endswith("broken.jpg")][0]
    with pytest.raises(UnreadableImage, match="broken.jpg"):
        folder.load(broken)


def test_image_folder_refuses_bad_layouts(tmp_path):
    with pytest.raises(FileNotFoundError, match="ImageFolder: no such folder"):
        ImageFolder(tmp_path / "nowhere")
    (tmp_path / "only").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "only" / "a.png")
    with pytest.raises(ValueError, match="has only the class 'only'; expected .* at least two classes"):
        ImageFolder(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="ImageFolder: the class folder .*empty is empty"):
        ImageFolder(tmp_path)


def preprocess(size=24):
    return Preprocess(size, np.full(3, 0.5, np.float32), np.full(3, 0.25, np.float32), "train")


def test_loader_skips_unreadable_files_with_one_warning_each(tree):
    folder = ImageFolder(tree, size=32)
    loader = DataLoader(folder, preprocess(), batch_size=4, shuffle=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for epoch in range(2):
            images = sum(len(b.labels) for b in loader.batches(epoch))
            assert images == len(folder) - 2
    messages = sorted(str(w.message) for w in caught)
    assert len(messages) == 2
    assert "broken.jpg" in messages[0] and "notes.txt" in messages[1]
    assert set(p.split("/")[-1] for p in loader.unreadable) == {"broken.jpg", "notes.txt"}
    strict = DataLoader(folder, preprocess(), batch_size=64, strict=True)
    with pytest.raises(UnreadableImage):
        list(strict.batches())


def test_loader_is_deterministic_whatever_the_number_of_workers(tree):
    folder = ImageFolder(tree, size=32)
    runs = {}
    for workers in (0, 2):
        with DataLoader(folder, preprocess(), batch_size=3, shuffle=True, seed=7, workers=workers) as loader:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                runs[workers] = [(b.indices.tolist(), b.images) for b in loader.batches(epoch=1)]
    assert [i for i, _ in runs[0]] == [i for i, _ in runs[2]]
    for (_, a), (_, b) in zip(runs[0], runs[2]):
        np.testing.assert_array_equal(a, b)
    loader = DataLoader(folder, preprocess(), batch_size=3, shuffle=True, seed=7)
    assert not np.array_equal(loader.order(0), loader.order(1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tail = [b.indices.tolist() for b in loader.batches(epoch=1, start=2)]
    assert tail == [i for i, _ in runs[0]][2:]            # resuming at batch 2 gives exactly the rest of the epoch


def test_lookahead_takes_the_next_item_early_and_once():
    pulled = []

    def items():
        for i in range(3):
            pulled.append(i)
            yield i
    ahead = Lookahead(items())
    assert next(ahead) == 0 and pulled == [0]
    ahead.load_next()
    ahead.load_next()
    assert pulled == [0, 1]                  # taken now, and only once
    assert next(ahead) == 1 and pulled == [0, 1]
    assert list(ahead) == [2]
    ahead.load_next()
    assert next(ahead, None) is None


def test_loading_the_next_batch_early_changes_nothing_but_when(tree):
    """``load_next()`` (which DataParallel calls while the other processes compute) takes the next batch once,
    however often it is called, and the epoch's batches stay the same ones in the same order."""
    folder = ImageFolder(tree, size=32)
    loader = DataLoader(folder, preprocess(), batch_size=3, shuffle=True, seed=7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = [(b.indices.tolist(), b.images) for b in loader.batches(epoch=1)]
        batches, early = loader.batches(epoch=1), []
        for batch in batches:
            batches.load_next()
            batches.load_next()
            early.append((batch.indices.tolist(), batch.images))
        batches.load_next()                                   # past the end: still nothing more
        assert next(batches, None) is None
    assert [i for i, _ in early] == [i for i, _ in plain] and len(plain) > 2
    for (_, a), (_, b) in zip(early, plain):
        np.testing.assert_array_equal(a, b)


def test_worker_processes_end(tree):
    folder = ImageFolder(tree, size=32)
    loader = DataLoader(folder, preprocess(), batch_size=2, workers=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        next(iter(loader.batches()))         # stop in the middle of an epoch
    assert len(multiprocessing.active_children()) >= 2
    loader.close()
    assert multiprocessing.active_children() == []
    with DataLoader(folder, preprocess(), batch_size=2, workers=2) as loader, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        list(loader.batches())
    assert multiprocessing.active_children() == []


def test_cache_gives_the_same_images_and_remembers_unreadable_ones(tree, tmp_path):
    folder = ImageFolder(tree, size=32)
    cache = ImageCache(folder, tmp_path / "cache")
    assert not cache.exists()
    with DataLoader(folder, None, 1) as loader:
        cache.build(loader.decoded_images())
    assert cache.exists() and ImageCache(folder, tmp_path / "cache").exists()
    for i in range(len(folder)):
        try:
            expected = folder.load(i)
        except UnreadableImage:
            with pytest.raises(UnreadableImage):
                cache.load(i)
            continue
        np.testing.assert_array_equal(cache.load(i), expected)
    (tree / "cats" / "new.png").write_bytes((tree / "dogs" / "extra.png").read_bytes())
    assert not ImageCache(ImageFolder(tree, size=32), tmp_path / "cache").exists()   # new files, new cache


def test_image_statistics(tree):
    folder = ImageFolder(tree, size=32)
    stats = image_statistics(folder, count=100)
    readable = []
    for i in range(len(folder)):
        try:
            readable.append(folder.load(i) / 255.0)
        except UnreadableImage:
            pass
    pixels = np.stack(readable)
    assert stats["sample_size"] == len(readable) == 11 and stats["pixel_mean"].shape == (32, 32, 3)
    np.testing.assert_allclose(stats["mean"], pixels.mean(axis=(0, 1, 2)), rtol=1e-5)
    np.testing.assert_allclose(stats["std"], pixels.std(axis=(0, 1, 2)), rtol=1e-4)
    np.testing.assert_allclose(stats["pixel_mean"], pixels.mean(axis=0), rtol=1e-5, atol=1e-7)
    covariance = stats["eigenvectors"] @ np.diag(stats["eigenvalues"]) @ stats["eigenvectors"].T
    np.testing.assert_allclose(covariance, np.cov(pixels.reshape(-1, 3).T, ddof=0), rtol=1e-3, atol=1e-6)


def test_an_interrupted_cache_build_leaves_nothing_behind(tree, tmp_path):
    folder = ImageFolder(tree, size=32)
    cache = ImageCache(folder, tmp_path / "cache")

    def dies_halfway():
        yield 0, folder.load(0)
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        cache.build(dies_halfway())
    assert not cache.exists() and list((tmp_path / "cache").iterdir()) == []
    with DataLoader(folder, None, 1) as loader:
        cache.build(loader.decoded_images())
    cache.meta_path.write_text('{"unreadable": {')          # damaged metadata: not a cache
    assert not cache.exists()


# ----- the built-in dataset ----------------------------------------------------------------------------
def test_builtin_dataset_is_reproducible_and_complete(tmp_path):
    a = make_builtin_dataset(tmp_path / "a", seed=3, train_per_class=2, val_per_class=1, quiet=True)
    b = make_builtin_dataset(tmp_path / "b", seed=3, train_per_class=2, val_per_class=1, quiet=True)
    c = make_builtin_dataset(tmp_path / "c", seed=4, train_per_class=2, val_per_class=1, quiet=True)
    files = sorted(p.relative_to(a) for p in a.rglob("*.jpg"))
    assert len(files) == 10 * 3
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    assert any((a / f).read_bytes() != (c / f).read_bytes() for f in files)
    folder = ImageFolder(a / "train", size=48)
    assert len(folder.classes) == 10 and len(folder) == 20
    assert json.loads((a / "dataset.json").read_text())["seed"] == 3
    assert make_builtin_dataset(tmp_path / "a", seed=3, train_per_class=2, val_per_class=1, quiet=True) == a
    with pytest.raises(ValueError, match="made with other settings"):
        make_builtin_dataset(tmp_path / "a", seed=3, train_per_class=5, val_per_class=1, quiet=True)


@pytest.mark.parametrize("cores, cpu, cuda", [(1, 0, 1), (2, 0, 2), (3, 1, 3), (8, 4, 8)])
def test_default_workers_leave_the_cores_to_the_cpu_ops(monkeypatch, cores, cpu, cuda):
    from minigrad.data import default_workers
    monkeypatch.setattr("minigrad.backend.cpu.CORES", cores)
    assert (default_workers("cpu"), default_workers("cuda:0")) == (cpu, cuda)
