"""Where images come from: torchvision's download, the CIFAR-10 python archive, or an image folder.

Each source is one function returning ``RawData``: uint8 images (N, 3, 32, 32) and int64
labels indexing the chosen classes, for CIFAR-10's training and test splits.
"""

import os
import pickle
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

BATCHES_DIR = "cifar-10-batches-py"
ARCHIVE = "cifar-10-python.tar.gz"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
IMAGE_SHAPE = (3, 32, 32)


class DataError(Exception):
    """The data cannot be used; the message names the path and what to do about it."""


@dataclass(frozen=True)
class RawData:
    """Both CIFAR-10 splits, restricted to the chosen classes (label i is ``classes[i]``)."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor


@dataclass(frozen=True)
class Source:
    """A resolved data source: its kind and the path it reads."""

    kind: str  # "download", "batches", "archive" or "imagefolder"
    path: Path

    def identity(self) -> list[object]:
        """What the cached tensors depend on: kind, path, and the size and mtime of its files."""
        if self.kind == "download":  # torchvision checks the archive's md5: the data is canonical
            return [self.kind, str(self.path)]
        stats = [self.path.stat()] if self.path.is_file() else list(_file_stats(
            self.path, recursive=self.kind == "imagefolder"))
        return [self.kind, str(self.path), len(stats), sum(s.st_size for s in stats),
                max((s.st_mtime_ns for s in stats), default=0)]

    def describe(self) -> str:
        return f"{self.kind}:{self.path}"


def _file_stats(folder: Path, recursive: bool) -> Iterator[os.stat_result]:
    """One ``stat`` per file (an image folder has thousands: this runs at every session start)."""
    for entry in os.scandir(folder):
        if entry.is_dir() and recursive:
            yield from _file_stats(Path(entry.path), recursive)
        elif entry.is_file():
            yield entry.stat()


def resolve_source(data_dir: str | os.PathLike | None, cache_dir: Path) -> Source:
    """Decide which source a path means. ``None`` means torchvision's download into the cache."""
    if data_dir is None:
        return Source("download", cache_dir / "cifar10")
    path = Path(data_dir).expanduser().resolve()
    if not path.exists():
        raise DataError(f"{path}: data folder does not exist; point --data-dir or NORMCHECK_DATA "
                        "at an image-folder tree, a cifar-10-batches-py folder or "
                        "cifar-10-python.tar.gz")
    if path.is_file():
        if path.name.endswith(".tar.gz"):
            return Source("archive", path)
        raise DataError(f"{path}: not a folder or a {ARCHIVE} archive")
    if (path / "train").is_dir() and (path / "test").is_dir():
        return Source("imagefolder", path)
    if (path / "data_batch_1").exists():
        return Source("batches", path)
    if (path / BATCHES_DIR).is_dir():
        return Source("batches", path / BATCHES_DIR)
    if (path / ARCHIVE).is_file():
        return Source("archive", path / ARCHIVE)
    raise DataError(f"{path}: no data found; expected train/<class>/ and test/<class>/ image "
                    f"folders, a {BATCHES_DIR} folder or {ARCHIVE}")


def load_raw(source: Source, classes: tuple[str, ...], cache_dir: Path) -> RawData:
    """Decode the source's images of ``classes``; the slow step the cache exists to skip."""
    if source.kind == "imagefolder":
        return load_image_folder(source.path, classes)
    if source.kind == "batches":
        return load_cifar_batches(source.path, classes)
    if source.kind == "archive":
        return load_cifar_batches(extract_archive(source.path, cache_dir), classes)
    return load_cifar_batches(download_cifar10(source.path), classes)


def download_cifar10(root: Path) -> Path:
    """Fetch CIFAR-10 with torchvision (skipped when already there); return the batches folder."""
    from torchvision.datasets import CIFAR10
    from torchvision.datasets.utils import download_and_extract_archive

    batches = root / BATCHES_DIR
    if (batches / "data_batch_1").exists():
        return batches
    try:
        download_and_extract_archive(CIFAR10.url, str(root), filename=CIFAR10.filename,
                                     md5=CIFAR10.tgz_md5)
    except Exception as exc:  # URLError, socket timeouts, HTTP errors: all mean "no data"
        raise DataError(
            f"{root}: no data found and CIFAR-10 could not be downloaded ({exc}). Offline, point "
            "--data-dir or NORMCHECK_DATA at an image-folder tree, a cifar-10-batches-py "
            "folder or cifar-10-python.tar.gz") from exc
    return batches


def extract_archive(archive: Path, cache_dir: Path) -> Path:
    """Unpack ``cifar-10-python.tar.gz`` once into the cache (atomically) and return its batches."""
    target = cache_dir / "extracted" / f"{archive.stat().st_size}-{archive.stat().st_mtime_ns}"
    if not (target / BATCHES_DIR).is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".extract-"))
        try:
            with tarfile.open(archive, "r:gz") as tar:
                tar.extractall(tmp, filter="data")
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise DataError(f"{archive}: cannot unpack the archive ({exc})") from exc
        if not (tmp / BATCHES_DIR).is_dir():
            raise DataError(f"{archive}: the archive has no {BATCHES_DIR} folder")
        try:
            tmp.rename(target)
        except OSError:  # another process finished first; its copy is as good as ours
            pass
    return target / BATCHES_DIR


def _unpickle(path: Path) -> dict:
    if not path.is_file():
        raise DataError(f"{path}: missing CIFAR-10 batch file")
    try:
        with path.open("rb") as f:
            return pickle.load(f, encoding="latin1")
    except Exception as exc:
        raise DataError(f"{path}: cannot be read as a CIFAR-10 batch ({exc})") from exc


def load_cifar_batches(folder: Path, classes: tuple[str, ...]) -> RawData:
    """Read the python-pickle CIFAR-10 format (``data_batch_1..5``, ``test_batch``)."""
    names = _unpickle(folder / "batches.meta")["label_names"]
    missing = [c for c in classes if c not in names]
    if missing:
        raise DataError(f"{folder}: classes {missing} are not in this data set; it has {names}")
    wanted = [names.index(c) for c in classes]

    def read(files: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = [], []
        for name in files:
            batch = _unpickle(folder / name)
            data = np.asarray(batch["data"], dtype=np.uint8)
            if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
                raise DataError(f"{folder / name}: images are not 32x32 RGB "
                                f"(data has shape {data.shape})")
            xs.append(data.reshape(-1, *IMAGE_SHAPE))
            ys.append(np.asarray(batch["labels"], dtype=np.int64))
        x, y = torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))
        keep = torch.zeros_like(y, dtype=torch.bool)
        relabel = torch.full((len(names),), -1, dtype=torch.int64)
        for i, original in enumerate(wanted):
            keep |= y == original
            relabel[original] = i
        return x[keep].contiguous(), relabel[y[keep]]

    train_x, train_y = read([f"data_batch_{i}" for i in range(1, 6)])
    test_x, test_y = read(["test_batch"])
    return RawData(train_x, train_y, test_x, test_y)


def _decode(path: Path) -> torch.Tensor:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            mode, size = image.mode, image.size
            pixels = np.array(image)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot be decoded as an image ({exc}); remove or replace it") \
            from exc
    if mode != "RGB" or size != (32, 32):
        raise DataError(f"{path}: image is not 32x32 RGB (it is {size[0]}x{size[1]} {mode}); "
                        "convert it or remove it")
    return torch.from_numpy(pixels).permute(2, 0, 1)


def load_image_folder(root: Path, classes: tuple[str, ...]) -> RawData:
    """Read ``train/<class>/*`` and ``test/<class>/*`` (png or jpg), in sorted file order."""

    def read(split: str) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = [], []
        for label, name in enumerate(classes):
            folder = root / split / name
            if not folder.is_dir():
                have = sorted(p.name for p in (root / split).iterdir() if p.is_dir())
                raise DataError(f"{folder}: class folder {name!r} is missing; "
                                f"{root / split} has {have}")
            files = sorted(p for p in folder.iterdir()
                           if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
            xs.extend(_decode(p) for p in files)
            ys.extend([label] * len(files))
        if not xs:
            return (torch.empty((0, *IMAGE_SHAPE), dtype=torch.uint8),
                    torch.empty(0, dtype=torch.int64))
        return torch.stack(xs), torch.tensor(ys, dtype=torch.int64)

    train_x, train_y = read("train")
    test_x, test_y = read("test")
    return RawData(train_x, train_y, test_x, test_y)
