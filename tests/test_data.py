"""Data sources, split protocols, the tensor cache, and every bad input's error message."""

import io
import tarfile
import urllib.error
from pathlib import Path

import pytest
import torch
from conftest import write_batches, write_image_folder
from PIL import Image

from normcheck.data import PROTOCOLS, DataError, SplitProtocol, load_splits, resolve_source, sources
from normcheck.data import cache as cache_module
from normcheck.data.split import split
from normcheck.records import DataSpec

SMALL = SplitProtocol("small", train_per_class=8, val_per_class=4, test_per_class=3)


@pytest.fixture
def small_protocol(monkeypatch: pytest.MonkeyPatch) -> DataSpec:
    """Register a tiny protocol so image-folder tests stay fast."""
    monkeypatch.setitem(PROTOCOLS, "small", SMALL)
    return DataSpec(protocol="small")


def test_seed_protocol_on_batches_folder(seed_batches: Path, cache_dir: Path) -> None:
    data = load_splits(seed_batches, DataSpec(), cache_dir)
    assert data.train_x.shape == (2400, 3, 32, 32) and data.train_x.dtype == torch.uint8
    assert data.val_x.shape == (480, 3, 32, 32)
    assert data.test_x.shape == (480, 3, 32, 32)
    for y, per_class in ((data.train_y, 800), (data.val_y, 160), (data.test_y, 160)):
        assert y.bincount().tolist() == [per_class] * 3  # stratified
    assert data.classes == ("cat", "dog", "horse")


def test_validation_never_overlaps_train_or_comes_from_test(seed_batches: Path,
                                                             cache_dir: Path) -> None:
    raw = sources.load_cifar_batches(seed_batches, ("cat", "dog", "horse"))
    parts = split(raw, ("cat", "dog", "horse"), SMALL, seed=42, origin="x")
    train = {tuple(x.flatten().tolist()) for x in parts["train_x"]}
    val = {tuple(x.flatten().tolist()) for x in parts["val_x"]}
    pool = {tuple(x.flatten().tolist()) for x in raw.train_x}
    assert not train & val
    assert val <= pool  # validation images come from the training split


def test_splits_are_reproducible_and_seed_dependent(seed_batches: Path) -> None:
    raw = sources.load_cifar_batches(seed_batches, ("cat", "dog", "horse"))
    a = split(raw, ("cat", "dog", "horse"), SMALL, seed=42, origin="x")
    b = split(raw, ("cat", "dog", "horse"), SMALL, seed=42, origin="x")
    c = split(raw, ("cat", "dog", "horse"), SMALL, seed=7, origin="x")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["train_x"], c["train_x"])


def test_full_protocol_needs_5000_per_class(seed_batches: Path, cache_dir: Path) -> None:
    with pytest.raises(DataError, match=r"'cat' has 1000 training images; protocol 'full' needs 5000"):
        load_splits(seed_batches, DataSpec(protocol="full"), cache_dir)


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_image_folder_source(tmp_path: Path, cache_dir: Path, small_protocol: DataSpec,
                             suffix: str) -> None:
    root = write_image_folder(tmp_path / "images", 12, 3, suffix=suffix)
    data = load_splits(root, small_protocol, cache_dir)
    assert data.train_x.shape == (24, 3, 32, 32) and data.val_x.shape == (12, 3, 32, 32)
    assert data.source == f"imagefolder:{root.resolve()}"


def test_archive_source_and_parent_folder_resolution(tmp_path: Path, cache_dir: Path) -> None:
    batches = write_batches(tmp_path / "src" / "cifar-10-batches-py", 15, 3)
    archive = tmp_path / "dl" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(batches, arcname="cifar-10-batches-py")
    assert resolve_source(archive.parent, cache_dir).kind == "archive"
    assert resolve_source(batches.parent, cache_dir).kind == "batches"
    raw = sources.load_raw(resolve_source(archive, cache_dir), ("cat", "horse"), cache_dir)
    direct = sources.load_cifar_batches(batches, ("cat", "horse"))
    assert torch.equal(raw.train_x, direct.train_x) and torch.equal(raw.test_y, direct.test_y)
    assert set(raw.train_y.tolist()) == {0, 1}


def test_classes_are_configurable(seed_batches: Path) -> None:
    a = sources.load_cifar_batches(seed_batches, ("horse", "cat"))
    b = sources.load_cifar_batches(seed_batches, ("cat", "horse"))
    assert a.train_y.bincount().tolist() == [1000, 1000]
    # label i is the i-th class named
    assert torch.equal(a.train_x[a.train_y == 0], b.train_x[b.train_y == 1])


def test_cache_decodes_once(seed_batches: Path, cache_dir: Path,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    first = load_splits(seed_batches, DataSpec(), cache_dir)

    def no_decoding(*args, **kwargs):
        raise AssertionError("the source was decoded again despite a cached copy")

    monkeypatch.setattr(cache_module, "load_raw", no_decoding)
    second = load_splits(seed_batches, DataSpec(), cache_dir)
    assert second.fingerprint == first.fingerprint
    assert torch.equal(second.train_x, first.train_x)
    assert not list(cache_dir.glob(".*"))  # no temporary files left behind
    # another split seed or protocol reuses the decoded images
    resampled = load_splits(seed_batches, DataSpec(split_seed=1), cache_dir)
    assert resampled.fingerprint != first.fingerprint
    with pytest.raises(AssertionError):  # other classes are another cache entry
        load_splits(seed_batches, DataSpec(classes=("cat", "dog")), cache_dir)


def test_fingerprint_depends_on_the_split(seed_batches: Path, cache_dir: Path) -> None:
    a = load_splits(seed_batches, DataSpec(), cache_dir)
    b = load_splits(seed_batches, DataSpec(split_seed=1), cache_dir)
    assert a.fingerprint != b.fingerprint


def test_a_study_draws_every_split_from_images_read_once(seed_batches: Path, cache_dir: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A split per replicate: the decoded images are read once per process, each split is an
    indexing of them, and only the latest split is kept."""
    from normcheck.splits import Splits

    expected = {seed: load_splits(seed_batches, DataSpec(split_seed=seed), cache_dir)
                for seed in (1, 2, 3)}
    reads = []
    read = cache_module.load_raw_cached
    monkeypatch.setattr(cache_module, "load_raw_cached", lambda *a: reads.append(a) or read(*a))
    splits = Splits(str(seed_batches), DataSpec(), device=torch.device("cpu"),
                    cache_dir=cache_dir)
    for seed in (1, 2, 3, 1):
        assert splits.fingerprint(seed) == expected[seed].fingerprint
        assert torch.equal(splits.on_device(seed).val_y, expected[seed].val_y)
    assert len(reads) == 1
    assert splits.split(1) is splits.split(1) and splits.split(2).split_seed == 2


# --- bad input: every error names the path and the problem -------------------------------

def test_missing_folder(tmp_path: Path, cache_dir: Path) -> None:
    with pytest.raises(DataError, match=rf"{tmp_path / 'nope'}: data folder does not exist"):
        load_splits(tmp_path / "nope", DataSpec(), cache_dir)


def test_folder_without_data(tmp_path: Path, cache_dir: Path) -> None:
    with pytest.raises(DataError, match=rf"{tmp_path}: no data found"):
        load_splits(tmp_path, DataSpec(), cache_dir)


def test_missing_class_in_image_folder(tmp_path: Path, cache_dir: Path,
                                       small_protocol: DataSpec) -> None:
    root = write_image_folder(tmp_path / "images", 12, 3, classes=("cat", "dog"))
    with pytest.raises(DataError, match=r"train/horse: class folder 'horse' is missing; .* has \['cat', 'dog'\]"):
        load_splits(root, small_protocol, cache_dir)


def test_missing_class_in_batches(seed_batches: Path, cache_dir: Path) -> None:
    with pytest.raises(DataError, match=r"classes \['unicorn'\] are not in this data set"):
        load_splits(seed_batches, DataSpec(classes=("cat", "unicorn")), cache_dir)


@pytest.mark.parametrize("size, mode", [((16, 16), "RGB"), ((32, 32), "L"), ((32, 32), "RGBA")])
def test_image_not_32x32_rgb(tmp_path: Path, cache_dir: Path, small_protocol: DataSpec,
                             size: tuple[int, int], mode: str) -> None:
    root = write_image_folder(tmp_path / "images", 12, 3)
    bad = root / "train" / "dog" / "0005.png"
    Image.new(mode, size).save(bad)
    with pytest.raises(DataError, match=rf"{bad}: image is not 32x32 RGB"):
        load_splits(root, small_protocol, cache_dir)


def test_undecodable_file(tmp_path: Path, cache_dir: Path, small_protocol: DataSpec) -> None:
    root = write_image_folder(tmp_path / "images", 12, 3)
    bad = root / "test" / "cat" / "0001.png"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(DataError, match=rf"{bad}: cannot be decoded"):
        load_splits(root, small_protocol, cache_dir)


def test_too_few_images(tmp_path: Path, cache_dir: Path, small_protocol: DataSpec) -> None:
    root = write_image_folder(tmp_path / "images", 5, 3)
    with pytest.raises(DataError, match=r"class 'cat' has 5 training images; protocol 'small' needs 12"):
        load_splits(root, small_protocol, cache_dir)


def test_too_few_test_images(tmp_path: Path, cache_dir: Path, small_protocol: DataSpec) -> None:
    root = write_image_folder(tmp_path / "images", 12, 1)
    with pytest.raises(DataError, match=r"class 'cat' has 1 test images; protocol 'small' needs 3"):
        load_splits(root, small_protocol, cache_dir)


def test_corrupt_batch_file(tmp_path: Path, cache_dir: Path) -> None:
    folder = write_batches(tmp_path / "cifar-10-batches-py", 10, 2)
    (folder / "data_batch_3").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"data_batch_3: cannot be read as a CIFAR-10 batch"):
        load_splits(folder, DataSpec(), cache_dir)


def test_offline_without_data(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No --data-dir and no network: the error says how to point at local data."""
    import torchvision.datasets.utils

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets.utils, "download_and_extract_archive", offline)
    with pytest.raises(DataError, match=r"no data found and CIFAR-10 could not be downloaded.*"
                                        r"NORMCHECK_DATA"):
        load_splits(None, DataSpec(), cache_dir)


def test_download_source_reuses_an_existing_download(seed_batches: Path, cache_dir: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """torchvision's download lands in <cache>/cifar10; once there, nothing is fetched."""
    import shutil

    import torchvision.datasets.utils

    shutil.copytree(seed_batches, cache_dir / "cifar10" / "cifar-10-batches-py")
    monkeypatch.setattr(torchvision.datasets.utils, "download_and_extract_archive",
                        lambda *a, **k: pytest.fail("downloaded although the data was there"))
    data = load_splits(None, DataSpec(), cache_dir)
    assert data.source.startswith("download:") and len(data.train_y) == 2400


def test_bad_archive(tmp_path: Path, cache_dir: Path) -> None:
    archive = tmp_path / "cifar-10-python.tar.gz"
    archive.write_bytes(io.BytesIO(b"not gzip").getvalue())
    with pytest.raises(DataError, match=rf"{archive}: cannot unpack the archive"):
        load_splits(archive, DataSpec(), cache_dir)
