"""examples/train_alexnet.py end to end on a tiny dataset: outputs, resume, NaN, Ctrl-C, evaluation, bad input."""
import hashlib
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


def test_resume_continues_bit_exactly(data, tmp_path):
    assert run(data, tmp_path / "straight", "--epochs", "2") == 0
    assert run(data, tmp_path / "split", "--epochs", "1") == 0
    assert train_alexnet.main(["--resume", str(tmp_path / "split" / "last.npz"), "--epochs", "2", "--data", str(data),
                               "--out", str(tmp_path / "split"), "--workers", "0", "--cache", "off"]) == 0
    a, b = mg.load(tmp_path / "straight" / "last.npz"), mg.load(tmp_path / "split" / "last.npz")
    for name in a["model"]:
        np.testing.assert_array_equal(a["model"][name].numpy(), b["model"][name].numpy(), err_msg=name)
    for name in a["optimizer"]:
        if name.startswith("velocity"):
            np.testing.assert_array_equal(a["optimizer"][name].numpy(), b["optimizer"][name].numpy())
    assert a["history"][1]["val_top1_error"] == b["history"][1]["val_top1_error"]


def test_a_nan_loss_stops_with_advice_and_keeps_the_last_checkpoint(data, tmp_path, capsys):
    assert run(data, tmp_path, "--epochs", "1") == 0
    before = digest(tmp_path / "last.npz")
    code = train_alexnet.main(["--resume", str(tmp_path / "last.npz"), "--epochs", "2", "--lr", "1e12", "--data",
                               str(data), "--out", str(tmp_path), "--workers", "0", "--cache", "off"])
    err = capsys.readouterr().err
    assert code == 1
    assert "the loss became" in err and "at epoch 2, batch" in err and "try --lr" in err
    assert digest(tmp_path / "last.npz") == before


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
    assert checkpoint["epoch"] >= 1 and checkpoint["next_batch"] >= 1


def test_eval_only_with_ten_crops_and_the_per_pixel_mean(data, tmp_path, capsys):
    assert run(data, tmp_path, "--epochs", "1", "--mean", "pixel") == 0
    assert mg.load(tmp_path / "best.npz")["stats"]["mean"].shape == (76, 76, 3)
    capsys.readouterr()
    assert train_alexnet.main(["--eval-only", str(tmp_path / "best.npz"), "--ten-crop", "--data", str(data),
                               "--workers", "0"]) == 0
    assert "10 crops, 30 images): top-1 error" in capsys.readouterr().out


def test_an_unreadable_image_is_skipped_and_reported_or_stops_a_strict_run(data, tmp_path, capsys):
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    (copy / "train" / "circle" / "bad.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    assert run(copy, tmp_path / "lenient", "--epochs", "1") == 0
    assert "1 unreadable image(s) skipped so far" in capsys.readouterr().out
    assert run(copy, tmp_path / "strict", "--epochs", "1", "--strict") == 1
    assert "error: unreadable image " in capsys.readouterr().err


def test_help_explains_every_flag():
    text = subprocess.run([sys.executable, str(ROOT / "examples" / "train_alexnet.py"), "--help"],
                          capture_output=True, text=True, check=True).stdout
    for flag in ("--data", "--device", "--epochs", "--batch-size", "--lr", "--momentum", "--weight-decay", "--init",
                 "--preset", "--workers", "--seed", "--out", "--resume", "--eval-only", "--ten-crop", "--strict"):
        assert flag in text, flag
