"""Decode once, then reuse: decoded images cached on disk per source and classes, split on demand.

Splitting is indexing, milliseconds; decoding thousands of images is what the cache saves.
"""

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from filelock import FileLock

from normcheck.atomic import atomic_path
from normcheck.data.sources import DataError, RawData, Source, load_raw, resolve_source
from normcheck.data.split import get_protocol, split
from normcheck.paths import default_cache_dir
from normcheck.records import DataSpec

CACHE_FORMAT = 2  # bump when the cached layout changes


@dataclass(frozen=True)
class SplitData:
    """The train/validation/test tensors of one source, classes and protocol, plus provenance."""

    train_x: torch.Tensor  # uint8 (N, 3, 32, 32)
    train_y: torch.Tensor  # int64 (N,)
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: tuple[str, ...]
    protocol: str
    split_seed: int
    source: str
    fingerprint: str  # sha256 prefix of the tensors themselves

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def fingerprint(tensors: dict[str, torch.Tensor], classes: tuple[str, ...]) -> str:
    digest = hashlib.sha256(json.dumps(list(classes)).encode())
    for key in sorted(tensors):
        digest.update(key.encode())
        digest.update(tensors[key].numpy().tobytes())
    return digest.hexdigest()[:16]


def load_raw_cached(source: Source, classes: tuple[str, ...], cache_dir: Path) -> RawData:
    """The source's decoded images of ``classes``, decoding only if no cached copy exists.

    Concurrent callers (xdist workers) serialize on a file lock, so the source is decoded once.
    """
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"{cache_dir}: cannot create the data cache ({exc}); set NORMCHECK_CACHE "
                        "to a writable folder") from exc
    key = hashlib.sha256(json.dumps([CACHE_FORMAT, source.identity(), list(classes)]).encode())
    path = cache_dir / f"images-{key.hexdigest()[:20]}.pt"
    with FileLock(str(path) + ".lock"):
        if not path.exists():
            raw = load_raw(source, classes, cache_dir)
            with atomic_path(path) as tmp:
                torch.save(asdict(raw), tmp)
        return RawData(**torch.load(path, weights_only=True))


def load_splits(data_dir: str | os.PathLike | None, spec: DataSpec | None = None,
                cache_dir: Path | None = None) -> SplitData:
    """The train/validation/test splits for ``spec``; images come from the decode cache."""
    spec = spec or DataSpec()
    return Images(data_dir, spec.classes, cache_dir).splits(spec)


class Images:
    """One source's decoded images of some classes, read from the decode cache on first use and
    kept, so that drawing many splits (a split per replicate) costs an indexing each."""

    def __init__(self, data_dir: str | os.PathLike | None, classes: tuple[str, ...],
                 cache_dir: Path | None = None) -> None:
        self.data_dir, self.classes = data_dir, classes
        self.cache_dir = Path(cache_dir or default_cache_dir())
        self._loaded: tuple[Source, RawData] | None = None

    def splits(self, spec: DataSpec) -> SplitData:
        """The train/validation/test splits for ``spec`` (whose classes must be these)."""
        if self._loaded is None:
            source = resolve_source(self.data_dir, self.cache_dir)
            self._loaded = source, load_raw_cached(source, self.classes, self.cache_dir)
        source, raw = self._loaded
        protocol = get_protocol(spec.protocol)
        tensors = split(raw, spec.classes, protocol, spec.split_seed, origin=source.describe())
        return SplitData(**tensors, classes=spec.classes, protocol=protocol.name,
                         split_seed=spec.split_seed, source=source.describe(),
                         fingerprint=fingerprint(tensors, spec.classes))
