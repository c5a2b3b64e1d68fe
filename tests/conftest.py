"""Tiny synthetic data sets in each source format, for tests that must not need real CIFAR-10."""

import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
               "truck"]


def synthetic_images(n: int, label: int, seed: int) -> np.ndarray:
    """(n, 32, 32, 3) uint8 images: noise around a class-specific colour, so classes are learnable."""
    rng = np.random.default_rng(seed)
    base = np.array([(label * 85) % 256, (label * 40 + 60) % 256, (255 - label * 70) % 256])
    noise = rng.integers(-60, 60, size=(n, 32, 32, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def write_batches(folder: Path, train_per_class: int, test_per_class: int,
                  classes: tuple[int, ...] = (3, 5, 7)) -> Path:
    """A synthetic ``cifar-10-batches-py`` folder with images only for ``classes``."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "batches.meta").open("wb") as f:
        pickle.dump({"label_names": CIFAR_NAMES}, f)

    def batch(per_class: int, seed: int) -> dict:
        images = [synthetic_images(per_class, c, seed + c) for c in classes]
        data = np.concatenate(images).transpose(0, 3, 1, 2).reshape(-1, 3072)
        labels = [c for c in classes for _ in range(per_class)]
        order = np.random.default_rng(seed).permutation(len(labels))
        return {"data": data[order], "labels": [labels[i] for i in order]}

    per_batch = -(-train_per_class // 5)
    for i in range(1, 6):
        with (folder / f"data_batch_{i}").open("wb") as f:
            pickle.dump(batch(per_batch, seed=i * 100), f)
    with (folder / "test_batch").open("wb") as f:
        pickle.dump(batch(test_per_class, seed=999), f)
    return folder


def write_image_folder(root: Path, train_per_class: int, test_per_class: int,
                       classes: tuple[str, ...] = ("cat", "dog", "horse"),
                       suffix: str = ".png") -> Path:
    """A synthetic ``train/<class>/*`` and ``test/<class>/*`` tree."""
    for split, count in (("train", train_per_class), ("test", test_per_class)):
        for label, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i, image in enumerate(synthetic_images(count, label, seed=label + len(split))):
                Image.fromarray(image).save(folder / f"{i:04d}{suffix}")
    return root


@pytest.fixture(scope="session")
def seed_batches(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Enough synthetic images for the ``seed`` protocol (960 train and 160 test per class)."""
    return write_batches(tmp_path_factory.mktemp("cifar") / "cifar-10-batches-py", 1000, 170)


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"
