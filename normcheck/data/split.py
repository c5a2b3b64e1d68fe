"""Split protocols: stratified, seeded train/validation/test subsets of the raw data."""

import torch

from normcheck.data.sources import DataError, RawData
from normcheck.records import PROTOCOLS, SplitProtocol


def get_protocol(name: str) -> SplitProtocol:
    if name not in PROTOCOLS:
        raise DataError(f"unknown split protocol {name!r}; choose one of {sorted(PROTOCOLS)}")
    return PROTOCOLS[name]


def split(raw: RawData, classes: tuple[str, ...], protocol: SplitProtocol, seed: int,
          origin: str) -> dict[str, torch.Tensor]:
    """Draw each class's train and validation images from the training split, test from test.

    Draws are per class (stratified) from one generator seeded with ``seed``, so the same
    data, classes, protocol and seed always give the same split.
    """
    generator = torch.Generator().manual_seed(seed)
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in ("train", "val", "test")}
    for label, name in enumerate(classes):
        pool = (raw.train_y == label).nonzero().flatten()
        need = protocol.train_per_class + protocol.val_per_class
        if len(pool) < need:
            raise DataError(f"{origin}: class {name!r} has {len(pool)} training images; protocol "
                            f"{protocol.name!r} needs {need} ({protocol.train_per_class} train + "
                            f"{protocol.val_per_class} validation). Use more data or another "
                            f"protocol ({sorted(PROTOCOLS)})")
        pool = pool[torch.randperm(len(pool), generator=generator)]
        parts["train"].append(pool[: protocol.train_per_class])
        parts["val"].append(pool[protocol.train_per_class: need])

        test_pool = (raw.test_y == label).nonzero().flatten()
        test_need = protocol.test_per_class or 1
        if len(test_pool) < test_need:
            raise DataError(f"{origin}: class {name!r} has {len(test_pool)} test images; protocol "
                            f"{protocol.name!r} needs {test_need}")
        test_pool = test_pool[torch.randperm(len(test_pool), generator=generator)]
        parts["test"].append(test_pool[: protocol.test_per_class])

    out: dict[str, torch.Tensor] = {}
    for part, (x, y) in {"train": (raw.train_x, raw.train_y), "val": (raw.train_x, raw.train_y),
                         "test": (raw.test_x, raw.test_y)}.items():
        index = torch.cat(parts[part])
        out[f"{part}_x"], out[f"{part}_y"] = x[index].contiguous(), y[index].contiguous()
    return out
