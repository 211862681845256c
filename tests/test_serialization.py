"""Checkpoints: round trip, no pickle, atomic writes, clear errors for damaged or foreign files."""
import os

import numpy as np
import pytest

import minigrad as mg
from minigrad import serialization


def sample_checkpoint():
    net = mg.nn.Sequential(mg.nn.Linear(3, 4), mg.nn.ReLU(), mg.nn.Linear(4, 2))
    return {"model": net.state_dict(), "epoch": 7, "classes": ["cat", "dog"], "lr": 0.01, "best": None,
            "rng": np.arange(4, dtype=np.uint32), "nested": {"deeper": {"x": np.float64(2.5)}}}


def test_round_trip(tmp_path):
    saved = sample_checkpoint()
    mg.save(saved, tmp_path / "ck.npz")
    loaded = mg.load(tmp_path / "ck.npz")
    assert (loaded["epoch"], loaded["classes"], loaded["lr"], loaded["best"]) == (7, ["cat", "dog"], 0.01, None)
    assert loaded["nested"]["deeper"]["x"] == 2.5
    np.testing.assert_array_equal(loaded["rng"].numpy(), np.arange(4))
    assert loaded["rng"].dtype == np.uint32
    for name, value in saved["model"].items():
        np.testing.assert_array_equal(loaded["model"][name].numpy(), value.numpy())


def test_the_file_loads_without_pickle(tmp_path):
    mg.save(sample_checkpoint(), tmp_path / "ck.npz")
    with np.load(tmp_path / "ck.npz", allow_pickle=False) as archive:
        assert "model/0.weight" in archive.files


def test_a_truncated_file_gives_a_clear_error(tmp_path):
    path = tmp_path / "ck.npz"
    mg.save(sample_checkpoint(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"mg.load: cannot read .*ck.npz: it is truncated, damaged or not an .npz checkpoint"):
        mg.load(path)


def test_foreign_files_give_clear_errors(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ValueError, match="it is truncated, damaged or not an .npz checkpoint"):
        mg.load(text)
    other = tmp_path / "other.npz"
    np.savez(other, a=np.zeros(2))
    with pytest.raises(ValueError, match="is an .npz file but not a minigrad checkpoint"):
        mg.load(other)
    with pytest.raises(FileNotFoundError):
        mg.load(tmp_path / "missing.npz")


def test_a_write_that_dies_halfway_leaves_the_old_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "ck.npz"
    mg.save({"epoch": 1, "w": np.ones(3)}, path)

    def dying_write(file, arrays):
        file.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt   # e.g. Ctrl-C in the middle of writing
    monkeypatch.setattr(serialization, "_write_npz", dying_write)
    with pytest.raises(KeyboardInterrupt):
        mg.save({"epoch": 2, "w": np.zeros(3)}, path)
    monkeypatch.undo()
    assert mg.load(path)["epoch"] == 1
    assert os.listdir(tmp_path) == ["ck.npz"]    # no temporary file left behind


def test_values_that_cannot_be_stored_are_named(tmp_path):
    with pytest.raises(TypeError, match="mg.save: cannot store object at 'a/b'"):
        mg.save({"a": {"b": object()}}, tmp_path / "x.npz")
    with pytest.raises(ValueError, match="mg.save: keys must be strings without '/'"):
        mg.save({"a/b": 1}, tmp_path / "x.npz")


def test_object_arrays_are_refused_before_anything_is_written(tmp_path):
    with pytest.raises(TypeError, match="mg.save: the array at 'x' holds Python objects"):
        mg.save({"x": np.array([{"a": 1}], dtype=object)}, tmp_path / "x.npz")
    assert not list(tmp_path.iterdir())


def test_any_key_name_round_trips(tmp_path):
    # names that np.savez would take as its own arguments
    saved = {"allow_pickle": np.arange(3.0), "file": np.ones(2), "args": {"kwds": np.zeros(1)}}
    mg.save(saved, tmp_path / "x.npz")
    loaded = mg.load(tmp_path / "x.npz")
    np.testing.assert_array_equal(loaded["allow_pickle"].numpy(), np.arange(3.0))
    np.testing.assert_array_equal(loaded["args"]["kwds"].numpy(), np.zeros(1))


def test_checkpoints_get_the_usual_file_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        mg.save({"a": 1}, tmp_path / "x.npz")
    finally:
        os.umask(umask)
    assert (tmp_path / "x.npz").stat().st_mode & 0o777 == 0o644
