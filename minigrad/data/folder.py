"""Image sources: ``ImageFolder`` decodes JPEGs (or any Pillow format) from the ImageNet-style layout, and
``ImageCache`` keeps the decoded 256×256 images in one uint8 file so that later epochs decode nothing."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
from PIL import Image

from .transforms import center_square


class UnreadableImage(Exception):
    """A file that Pillow cannot decode (corrupt, truncated or not an image)."""

    def __init__(self, path, reason):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = str(path), str(reason)


class ImageFolder:
    """Images in ``root/<class>/<file>``; classes sorted by name are labels 0, 1, 2, ...

    ``load(i)`` gives image i as (size, size, 3) uint8: shorter side resized to ``size``, then the
    central size×size square (paper §2: 256).  Every file that is not hidden counts as an image;
    one that does not decode raises UnreadableImage when loaded, and the loader skips it with a warning.
    """

    def __init__(self, root, size: int = 256):
        self.root, self.size = Path(root), size
        if not self.root.is_dir():
            raise FileNotFoundError(f"ImageFolder: no such folder: {self.root}")
        self.classes = sorted(d.name for d in self.root.iterdir() if d.is_dir() and not d.name.startswith("."))
        if len(self.classes) < 2:
            found = f"only the class '{self.classes[0]}'" if self.classes else "no class folders"
            raise ValueError(f"ImageFolder: {self.root} has {found}; expected {self.root}/<class>/<image> with at "
                             "least two classes")
        self.samples: list[tuple[str, int]] = []
        for label, name in enumerate(self.classes):
            files = sorted(str(p) for p in (self.root / name).rglob("*")
                           if p.is_file() and not any(part.startswith(".") for part in p.relative_to(self.root).parts))
            if not files:
                raise ValueError(f"ImageFolder: the class folder {self.root / name} is empty")
            self.samples += [(f, label) for f in files]
        self.labels = np.array([label for _, label in self.samples], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.samples)

    def path(self, index: int) -> str:
        return self.samples[index][0]

    def load(self, index: int) -> np.ndarray:
        path = self.samples[index][0]
        try:
            with Image.open(path) as image:
                return center_square(image, self.size)
        except Exception as err:   # Pillow reports broken files in many ways (OSError, SyntaxError, ValueError, ...)
            raise UnreadableImage(path, f"{type(err).__name__}: {err}") from None

    def fingerprint(self) -> str:
        """Changes whenever the files, their sizes or times, or the image size change (names the cache)."""
        digest = hashlib.sha256(f"{self.root.resolve()}|{self.size}".encode())
        for path, label in self.samples:
            stat = os.stat(path)
            digest.update(f"{path}|{label}|{stat.st_size}|{stat.st_mtime_ns}".encode())
        return digest.hexdigest()[:16]


class ImageCache:
    """The images of an ImageFolder, decoded once into ``<dir>/<fingerprint>.npy`` ((N, S, S, 3) uint8, memory-mapped).

    Decoding JPEGs is most of a data loader's work; with the cache, later epochs only copy bytes.
    Unreadable files are remembered (and skipped) as in ImageFolder.  Build it with ``build``, which
    writes to a temporary name and renames when done, so a half-built cache is never used.
    """

    def __init__(self, folder: ImageFolder, directory):
        self.folder, self.directory = folder, Path(directory)
        key = folder.fingerprint()
        self.array_path = self.directory / f"{key}.npy"
        self.meta_path = self.directory / f"{key}.json"
        self.labels, self.size = folder.labels, folder.size
        self._images = None
        self._unreadable: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self.folder)

    def path(self, index: int) -> str:
        return self.folder.path(index)

    def exists(self) -> bool:
        """A complete cache: the array and readable metadata (the array is renamed into place last)."""
        try:
            return self.array_path.exists() and json.loads(self.meta_path.read_text())["count"] == len(self)
        except (OSError, ValueError, KeyError):
            return False

    def build(self, images_in_order) -> None:
        """Write the cache from (index, image or UnreadableImage) pairs covering every index.

        Everything goes to temporary files first; the metadata is renamed into place, then the array,
        so an interrupted build leaves no cache (and no temporary file) behind.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp_array = self.array_path.with_suffix(f".tmp{os.getpid()}.npy")
        tmp_meta = self.meta_path.with_suffix(f".tmp{os.getpid()}.json")
        try:
            out = np.lib.format.open_memmap(tmp_array, mode="w+", dtype=np.uint8,
                                            shape=(len(self), self.size, self.size, 3))
            unreadable = {}
            for index, image in images_in_order:
                if isinstance(image, UnreadableImage):
                    unreadable[str(index)] = image.reason
                else:
                    out[index] = image
            out.flush()
            del out
            tmp_meta.write_text(json.dumps({"unreadable": unreadable, "count": len(self)}))
            os.replace(tmp_meta, self.meta_path)
            os.replace(tmp_array, self.array_path)
        finally:
            for leftover in (tmp_array, tmp_meta):
                leftover.unlink(missing_ok=True)

    def load(self, index: int) -> np.ndarray:
        if self._images is None:   # opened lazily, so that each worker process maps the file itself
            self._images = np.load(self.array_path, mmap_mode="r")
            self._unreadable = {int(k): v for k, v in json.loads(self.meta_path.read_text())["unreadable"].items()}
        if index in self._unreadable:
            raise UnreadableImage(self.path(index), self._unreadable[index])
        return np.array(self._images[index])

    def __getstate__(self):   # worker processes get the paths, not an open memory map
        state = dict(self.__dict__)
        state["_images"] = None
        return state
