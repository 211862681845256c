"""examples/train_alexnet.py end to end on a tiny dataset: outputs, resume, NaN, Ctrl-C, evaluation, bad input."""
import hashlib
import re
import types
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import minigrad as mg
from minigrad.data import make_builtin_dataset
from minigrad.parallel import DataParallel

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
import train_alexnet  # noqa: E402


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_builtin_dataset(tmp_path_factory.mktemp("data") / "shapes", train_per_class=8, val_per_class=3,
                                quiet=True)


def run(data, out, *flags):
    argv = ["--preset", "tiny", "--data", str(data), "--out", str(out), "--workers", "0", "--cache", "off", *flags]
    return train_alexnet.main(argv)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_tiny_run_writes_everything(data, tmp_path, capsys):
    assert run(data, tmp_path, "--epochs", "2") == 0
    out = capsys.readouterr().out
    assert "preset 'tiny'" in out and "epoch   2  train loss" in out and "val top-1 error" in out
    assert "--preset full" in out                                          # says how to run the real network
    for name in ("last.npz", "best.npz", "metrics.csv", "curves.png", "conv1_filters.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,train_loss,train_top1,val_loss,val_top1_error,val_top5_error,lr") and len(rows) == 3
    checkpoint = mg.load(tmp_path / "last.npz")
    assert checkpoint["epoch"] == 2 and checkpoint["classes"][0] == "checkerboard"
    assert checkpoint["config"]["preset"] == "tiny" and "towers.1.conv1.weight" in checkpoint["model"]
    from PIL import Image
    assert Image.open(tmp_path / "curves.png").size == (1000, 400)


def assert_same_checkpoints(a, b):
    for name in a["model"]:
        np.testing.assert_array_equal(a["model"][name].numpy(), b["model"][name].numpy(), err_msg=name)
    for name in a["optimizer"]:
        if name.startswith("velocity"):
            np.testing.assert_array_equal(a["optimizer"][name].numpy(), b["optimizer"][name].numpy(), err_msg=name)
    timing = {"seconds", "images_per_s"}           # differs from run to run
    assert [{k: v for k, v in row.items() if k not in timing} for row in a["history"]] == \
           [{k: v for k, v in row.items() if k not in timing} for row in b["history"]]   # losses, errors of every epoch
    assert a["schedule"] == b["schedule"] and a["best_val_error"] == b["best_val_error"]


def test_resume_continues_bit_exactly(data, tmp_path, capsys):
    assert run(data, tmp_path / "straight", "--epochs", "2") == 0
    assert run(data, tmp_path / "split", "--epochs", "1") == 0
    capsys.readouterr()
    assert train_alexnet.main(["--resume", str(tmp_path / "split" / "last.npz"), "--epochs", "2", "--data", str(data),
                               "--out", str(tmp_path / "split"), "--workers", "0", "--cache", "off"]) == 0
    out = capsys.readouterr().out
    assert "last.npz: epoch 2, batch 0" in out and "epoch   1  train loss" not in out   # not a fresh start
    a, b = mg.load(tmp_path / "straight" / "last.npz"), mg.load(tmp_path / "split" / "last.npz")
    assert_same_checkpoints(a, b)


class StopAfter:
    """Stands in for Ctrl-C: 'requested' turns true at the k-th step's check."""

    def __init__(self, steps):
        self.steps = steps

    def __call__(self):
        return self

    @property
    def requested(self):
        self.steps -= 1
        return self.steps <= 0

    def restore(self):
        pass


@pytest.mark.parametrize("stop_after", [1, 2, 3])   # tiny: 80 images, batches of 16 -> 5 per epoch; 3 = mid-epoch 2
def test_resume_from_the_middle_of_an_epoch_is_bit_exact(data, tmp_path, monkeypatch, stop_after):
    flags = ["--epochs", "2", "--batch-size", "16"]
    assert run(data, tmp_path / "straight", *flags) == 0
    monkeypatch.setattr(train_alexnet, "StopRequest", StopAfter(5 + stop_after if stop_after == 3 else stop_after))
    assert run(data, tmp_path / "split", *flags) == 130
    monkeypatch.undo()
    position = mg.load(tmp_path / "split" / "last.npz")["position"]
    assert position["next_batch"] == stop_after
    assert train_alexnet.main(["--resume", str(tmp_path / "split" / "last.npz"), "--data", str(data), "--out",
                               str(tmp_path / "split"), "--workers", "0", "--cache", "off"]) == 0
    a, b = mg.load(tmp_path / "straight" / "last.npz"), mg.load(tmp_path / "split" / "last.npz")
    assert_same_checkpoints(a, b)


def test_a_mid_epoch_checkpoint_refuses_another_batch_size(data, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(train_alexnet, "StopRequest", StopAfter(2))
    assert run(data, tmp_path, "--epochs", "1", "--batch-size", "16") == 130
    monkeypatch.undo()
    with pytest.raises(SystemExit, match="stopped in the middle of an epoch .* resume it with the same --batch-size"):
        train_alexnet.main(["--resume", str(tmp_path / "last.npz"), "--batch-size", "32", "--data", str(data),
                            "--out", str(tmp_path), "--workers", "0", "--cache", "off"])


def test_a_nan_loss_stops_with_advice_and_keeps_the_last_checkpoint(data, tmp_path, capsys):
    assert run(data, tmp_path, "--epochs", "1") == 0
    before = digest(tmp_path / "last.npz")
    code = train_alexnet.main(["--resume", str(tmp_path / "last.npz"), "--epochs", "2", "--lr", "1e12", "--data",
                               str(data), "--out", str(tmp_path), "--workers", "0", "--cache", "off"])
    err = capsys.readouterr().err
    assert code == 1
    assert "the loss became" in err and "at epoch 2, batch" in err and "try --lr" in err
    assert digest(tmp_path / "last.npz") == before


def test_weights_that_turned_nan_on_the_last_step_are_never_saved(data, tmp_path, capsys):
    # One step per epoch (batch 80 = the whole training set): the loss of that step is finite, the
    # update makes the weights NaN, and only the evaluation can see it.
    code = run(data, tmp_path, "--epochs", "2", "--batch-size", "80", "--lr", "1e12")
    assert code == 1
    assert "outputs on the validation images are not finite" in capsys.readouterr().err
    assert not (tmp_path / "last.npz").exists() and not (tmp_path / "best.npz").exists()


def test_a_dataset_smaller_than_a_batch_is_refused(data, tmp_path):
    with pytest.raises(SystemExit, match="the training set has 80 images, fewer than one batch \\(128\\)"):
        run(data, tmp_path, "--batch-size", "128")


def test_top_k_errors_and_ten_crop_averaging():
    scores = np.array([[0.1, 0.5, 0.2, 0.05, 0.05, 0.04, 0.03, 0.02, 0.01, 0.0],
                       [0.3, 0.0, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05]])
    assert train_alexnet.top_k_errors(scores, np.array([1, 9])) == (1, 1)   # row 2: 9 is neither top-1 nor top-5
    assert train_alexnet.top_k_errors(scores, np.array([2, 0])) == (1, 0)

    class MeanPixel(mg.nn.Module):      # logits = (mean of the crop, 0.5, 0.4, 0.3, 0.2, 0.1): the first differs by crop
        input_size = 4

        def forward(self, x):
            m = x.numpy().mean(axis=(1, 2, 3))
            return mg.tensor(np.stack([m] + [np.full_like(m, v) for v in (0.5, 0.4, 0.3, 0.2, 0.1)], axis=1))

    class OneBatch:
        def __len__(self):
            return 1

        def batches(self):
            images = np.random.default_rng(0).normal(size=(2, 10, 3, 4, 4)).astype(np.float32)
            yield types.SimpleNamespace(images=images, labels=np.array([0, 3]))

    result = train_alexnet.evaluate(DataParallel(MeanPixel(), processes=1), OneBatch())
    images = OneBatch().batches().__next__().images
    logits = np.zeros((2, 10, 6))
    logits[..., 0] = images.mean(axis=(2, 3, 4))
    logits[..., 1:] = [0.5, 0.4, 0.3, 0.2, 0.1]
    probs = (np.exp(logits) / np.exp(logits).sum(axis=2, keepdims=True)).mean(axis=1)     # softmax, then average
    expected_loss = -(np.log(probs[0, 0]) + np.log(probs[1, 3])) / 2
    assert result["val_loss"] == pytest.approx(expected_loss)
    ranked = np.argsort(-probs, axis=1)                  # classes by averaged probability (no ties here)
    missed_top1 = (ranked[:, 0] != [0, 3]).sum()
    missed_top5 = sum(label not in row[:5] for label, row in zip([0, 3], ranked))
    assert missed_top1 != missed_top5                    # so that the two cannot be mixed up unnoticed
    assert (result["val_top1_error"], result["val_top5_error"]) == (missed_top1 / 2, missed_top5 / 2)


def test_ctrl_c_saves_a_checkpoint_and_exits_cleanly(data, tmp_path):
    command = [sys.executable, str(ROOT / "examples" / "train_alexnet.py"), "--preset", "tiny", "--data", str(data),
               "--out", str(tmp_path), "--workers", "0", "--cache", "off", "--epochs", "500"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (tmp_path / "metrics.csv").exists():   # wait until training is under way (one epoch done)
        assert process.poll() is None and time.time() < deadline, process.communicate()
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Ctrl-C: stopping after this step" in stderr and "Resume with:" in stdout
    checkpoint = mg.load(tmp_path / "last.npz")
    assert checkpoint["epoch"] >= 1 and checkpoint["position"]["next_batch"] >= 1


def test_eval_only_with_ten_crops_and_the_per_pixel_mean(data, tmp_path, capsys):
    assert run(data, tmp_path, "--epochs", "1", "--mean", "pixel") == 0
    assert mg.load(tmp_path / "best.npz")["stats"]["mean"].shape == (76, 76, 3)
    capsys.readouterr()
    assert train_alexnet.main(["--eval-only", str(tmp_path / "best.npz"), "--ten-crop", "--data", str(data),
                               "--workers", "0"]) == 0
    assert "10 crops, 30 images): top-1 error" in capsys.readouterr().out


@pytest.mark.parametrize("classes, top5", [(5, "top-5 error n/a"), (6, "top-5 error ")])
def test_with_five_classes_or_fewer_top5_error_is_reported_as_not_applicable(data, tmp_path, capsys, classes, top5):
    few = tmp_path / "few"
    for split in ("train", "val"):
        for folder in sorted((data / split).iterdir())[:classes]:
            shutil.copytree(folder, few / split / folder.name)
    assert run(few, tmp_path, "--epochs", "1", "--batch-size", "8") == 0
    out = capsys.readouterr().out
    assert top5 in out and ("n/a" in out) == (classes <= 5)
    assert train_alexnet.main(["--eval-only", str(tmp_path / "best.npz"), "--data", str(few), "--workers", "0"]) == 0
    out = capsys.readouterr().out
    assert top5 in out and ("n/a" in out) == (classes <= 5)


def test_an_unreadable_image_is_skipped_and_reported_or_stops_a_strict_run(data, tmp_path, capsys):
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    (copy / "train" / "circle" / "bad.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    assert run(copy, tmp_path / "lenient", "--epochs", "1") == 0
    assert "1 unreadable image(s) skipped so far" in capsys.readouterr().out
    assert run(copy, tmp_path / "strict", "--epochs", "1", "--strict") == 1
    bad = copy / "train" / "circle" / "bad.jpg"
    assert re.search(re.escape(f"error: unreadable image {bad} (") + r".+\); without --strict it would be skipped",
                     capsys.readouterr().err)


def test_help_explains_every_flag():
    text = subprocess.run([sys.executable, str(ROOT / "examples" / "train_alexnet.py"), "--help"],
                          capture_output=True, text=True, check=True).stdout
    parser_flags = set(re.findall(r"--[a-z][a-z-]+", text))
    for flag in ("--data", "--device", "--epochs", "--batch-size", "--lr", "--momentum", "--weight-decay", "--init",
                 "--preset", "--workers", "--processes", "--seed", "--out", "--resume", "--eval-only", "--ten-crop", "--strict",
                 "--cache", "--cache-dir", "--patience", "--mean", "--width", "--input-size", "--towers"):
        assert flag in parser_flags, flag
    for action in train_alexnet.make_parser()._actions:          # and every option has a help text
        assert action.help and len(action.help) > 10, action.option_strings


def test_the_process_count_is_recorded_and_a_default_that_cannot_start_falls_back_to_one(data, tmp_path, monkeypatch,
                                                                                         capsys):
    assert run(data, tmp_path / "two", "--processes", "2", "--epochs", "1") == 0
    assert mg.load(tmp_path / "two" / "last.npz")["config"]["processes"] == 2     # resuming keeps the split
    real = train_alexnet.DataParallel

    def no_room(model, processes):
        if processes > 1:
            raise RuntimeError("DataParallel: cannot reserve 9.9 MiB of shared memory in /dev/shm (not enough room)")
        return real(model, processes)
    monkeypatch.setattr(train_alexnet, "DataParallel", no_room)
    monkeypatch.setattr(train_alexnet.backend.cpu, "CORES", 2)
    assert run(data, tmp_path / "one", "--epochs", "1") == 0
    assert "note: DataParallel: cannot reserve 9.9 MiB" in capsys.readouterr().err
    assert mg.load(tmp_path / "one" / "last.npz")["config"]["processes"] == 1
    with pytest.raises(SystemExit, match=r"error: --processes 2: DataParallel: cannot reserve 9\.9 MiB"):
        run(data, tmp_path / "asked", "--processes", "2", "--epochs", "1")


def test_a_bad_process_count_is_a_clear_error(data, tmp_path):
    with pytest.raises(SystemExit, match=r"error: --processes 0: DataParallel: processes must be a whole number ≥ 1"):
        run(data, tmp_path, "--processes", "0")


def test_an_unwritable_out_folder_is_a_clear_error(data, tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(SystemExit, match="error: cannot use --out .*afile/out"):
        run(data, tmp_path / "afile" / "out")


def test_the_cpu_benchmark_times_the_network_the_default_run_trains():
    """benchmarks/bench_cpu.py --preset cpu writes the CPU preset out (it must not import minigrad); it has
    to stay the network this script trains by default, on the built-in dataset's classes."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_cpu
    from minigrad.data import BUILTIN_CLASSES
    ours, theirs = bench_cpu.PRESETS["cpu"], train_alexnet.PRESETS["cpu"]
    assert (ours["width"], ours["input_size"], ours["batch"]) == (theirs["width"], theirs["input_size"],
                                                                 theirs["batch_size"])
    assert ours["num_classes"] == len(BUILTIN_CLASSES)
