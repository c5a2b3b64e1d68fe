"""Which runs train together (``--pack``), decided without torch.

Runs can share a pack (``normcheck.packed``) when they have one architecture and one
schedule: the fields in ``PACK_FIELDS`` equal. Learning rate, weight decay, seed and split
are each model's own. Packing is not part of a run's identity (docs/packing.md): a run
trained in a pack is the same run, to float rounding, as one trained alone.
"""

import argparse
from collections.abc import Iterable

from normcheck.records import TrainConfig

PACK_FIELDS = ("fc_units", "norm", "epochs", "batch_size", "base_channels", "dropout")
AUTO_GPU = 16  # --pack auto on a GPU (see benchmarks/README.md, "Packed training")
AUTO_CPU = 1  # --pack auto on the CPU: not packed, packing is no faster there (same page)


def pack_option(value: str) -> str | int:
    """``--pack``: ``auto``, ``off`` or an integer >= 1 (1 is off)."""
    if value in ("auto", "off"):
        return value
    try:
        size = int(value)
    except ValueError:
        size = 0
    if size < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is neither auto, off nor an integer >= 1")
    return size


pack_option.__name__ = "auto, off or an integer >= 1"


def pack_size(option: str | int, device_type: str) -> int:
    """How many runs one pack trains on a ``device_type`` ("cuda", "cpu") device."""
    if option == "off":
        return 1
    if option == "auto":
        return AUTO_GPU if device_type == "cuda" else AUTO_CPU
    return int(option)


def pack_key(config: TrainConfig) -> tuple:
    """What runs in one pack must share."""
    return tuple(getattr(config, f) for f in PACK_FIELDS)


def check_packable(configs: list[TrainConfig]) -> None:
    """A ValueError naming the fields in which ``configs`` differ, if they cannot share."""
    if not configs:
        raise ValueError("a pack needs at least one run")
    differ = [f for f in PACK_FIELDS if len({getattr(c, f) for c in configs}) > 1]
    if differ:
        raise ValueError(f"runs of different {', '.join(differ)} cannot share a pack: "
                         f"{', '.join(c.case_id for c in configs)}")


def packs(configs: Iterable[TrainConfig], size: int) -> list[list[TrainConfig]]:
    """``configs`` in packs of at most ``size``, each of one architecture and schedule, in the
    order given (each pack where its first run stood)."""
    groups: dict[tuple, list[list[TrainConfig]]] = {}
    order: list[list[TrainConfig]] = []
    for config in configs:
        open_packs = groups.setdefault(pack_key(config), [])
        if not open_packs or len(open_packs[-1]) >= size:
            open_packs.append([])
            order.append(open_packs[-1])
        open_packs[-1].append(config)
    return order
