"""Data: the CIFAR-10 data set, the paper's augmentation, and a reproducible batch loader.

    train_set = CIFAR10(root, train=True)          # uint8 images (N, 3, 32, 32), int64 labels
    loader = DataLoader(train_set, 128, shuffle=True, drop_last=True, seed=0,
                        transform=cifar_train_transform())
    for images, labels in loader:                  # float32 (128, 3, 32, 32), int64 (128,)
        ...

``bundled_sample()`` is a small real CIFAR-10 sample shipped with tinyres, for running offline.
"""
from .cifar import CIFAR10, DatasetError, bundled_sample, default_data_root
from .loader import DataLoader
from .transforms import (CIFAR10_MEAN, CIFAR10_STD, Compose, Normalize, PerPixelMeanSubtraction,
                         RandomCrop, RandomHorizontalFlip, cifar_test_transform,
                         cifar_train_transform, to_float32)

__all__ = [
    "CIFAR10", "DatasetError", "bundled_sample", "default_data_root",
    "DataLoader",
    "CIFAR10_MEAN", "CIFAR10_STD", "Compose", "Normalize", "PerPixelMeanSubtraction",
    "RandomCrop", "RandomHorizontalFlip", "cifar_train_transform", "cifar_test_transform",
    "to_float32",
]
