"""Data for training: the ImageNet-style ImageFolder, an optional decoded cache, the paper's transforms,
a multi-process loader, and the built-in dataset of shapes."""
from . import transforms
from .builtin import CLASSES as BUILTIN_CLASSES
from .builtin import default_root, make_builtin_dataset
from .folder import ImageCache, ImageFolder, UnreadableImage
from .loader import Batch, DataLoader, Preprocess, default_workers, image_statistics

__all__ = ["BUILTIN_CLASSES", "Batch", "DataLoader", "ImageCache", "ImageFolder", "Preprocess", "UnreadableImage",
           "default_root", "default_workers", "image_statistics", "make_builtin_dataset", "transforms"]
