"""Checkpoints: ``mg.save(dict, path)`` and ``mg.load(path)``, as .npz files that need no pickle.

A checkpoint is a nested dict.  Its arrays and tensors become entries of the .npz archive
('model/conv1.weight'); everything else (numbers, strings, lists such as class names, None)
goes into one JSON entry.  Loading never unpickles anything (``allow_pickle=False``), so a
checkpoint from a stranger cannot run code.  Writes go to a temporary file in the same folder
that is renamed over the target only once complete, so a crash mid-write leaves the old file intact.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile

import numpy as np

from . import backend
from .tensor import Tensor

_JSON_KEY = "__minigrad_json__"


def save(obj: dict, path) -> None:
    """Write the nested dict ``obj`` to ``path`` atomically (the extension .npz is not added)."""
    arrays, plain = {}, {}
    _flatten(obj, "", arrays, plain)
    arrays[_JSON_KEY] = np.array(json.dumps(plain))
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            _write_npz(f, arrays)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)     # mkstemp makes 0600; a checkpoint gets the usual permissions
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _write_npz(file, arrays: dict) -> None:
    """The .npz format (a zip of .npy files) written entry by entry, never pickling anything."""
    with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in arrays.items():
            with archive.open(name + ".npy", "w", force_zip64=True) as entry:
                np.lib.format.write_array(entry, np.asanyarray(array), allow_pickle=False)


def load(path, device="cpu") -> dict:
    """Read a checkpoint written by ``save``; arrays come back as Tensors on ``device``."""
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            entries = {key: archive[key] for key in archive.files}
    except FileNotFoundError:
        raise
    except Exception as err:  # a damaged file fails in many ways (zip, zlib, header, pickle refusal): one message
        raise ValueError(f"mg.load: cannot read {path}: it is truncated, damaged or not an .npz checkpoint "
                         f"({type(err).__name__}: {err})") from None
    if _JSON_KEY not in entries:
        raise ValueError(f"mg.load: {path} is an .npz file but not a minigrad checkpoint (no {_JSON_KEY} entry)")
    result = json.loads(str(entries.pop(_JSON_KEY)))
    for key, array in entries.items():
        *parents, name = key.split("/")
        node = result
        for parent in parents:
            node = node.setdefault(parent, {})
        node[name] = Tensor(backend.to_device(array, device))
    return result


def _flatten(obj: dict, prefix: str, arrays: dict, plain: dict) -> None:
    """Split a nested dict into archive entries ('a/b' -> array) and a JSON tree of everything else."""
    if not isinstance(obj, dict):
        raise TypeError(f"mg.save: expected a dict, got {type(obj).__name__}")
    for key, value in obj.items():
        if not isinstance(key, str) or "/" in key or key == _JSON_KEY:
            raise ValueError(f"mg.save: keys must be strings without '/', got {key!r} under '{prefix or '/'}'")
        name = prefix + key
        if isinstance(value, np.generic):   # a NumPy number is stored as a plain number
            value = value.item()
        if isinstance(value, Tensor) or hasattr(value, "__array_interface__") or backend.is_cupy(value):
            array = np.asarray(backend.to_device(value.data if isinstance(value, Tensor) else value, "cpu"))  # no copy
            if array.dtype.hasobject:
                raise TypeError(f"mg.save: the array at '{name}' holds Python objects, which only pickle could "
                                "store; use numbers or strings")
            arrays[name] = array
        elif isinstance(value, dict):
            plain[key] = {}
            _flatten(value, name + "/", arrays, plain[key])
        else:
            try:
                json.dumps(value)
            except TypeError:
                raise TypeError(f"mg.save: cannot store {type(value).__name__} at '{name}' (arrays, tensors, dicts, "
                                "numbers, strings, lists and None are allowed)") from None
            plain[key] = value
