"""The normalisations the study compares: one vocabulary every module reads.

Adding a normalisation is one entry in ``NORMS``: the model builds its layers from it (one
model's, or the same layer for ``models`` models side by side in a packed module, each
model's channels a contiguous block normalised on its own), the grid accepts its name, the
hypotheses compare it with ``none``, and the report and figures give it a row, a colour and
a panel. Nothing here imports torch until a layer is built.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

CONTROL = "none"  # the arm every other normalisation is compared with


@dataclass(frozen=True)
class Norm:
    """One normalisation: how the report names it, its colour, and how to build its layers."""

    name: str
    label: str  # in prose: "BatchNorm", "no normalization"
    color: str  # a matplotlib colour
    layer: Callable[[int, bool, int], Any]  # (channels, spatial, models) -> torch module


def _identity(channels: int, spatial: bool, models: int = 1) -> Any:
    from torch import nn

    return nn.Identity()


def _batchnorm(channels: int, spatial: bool, models: int = 1) -> Any:
    """Statistics per channel, so ``models`` models' channels side by side keep theirs apart."""
    from torch import nn

    width = models * channels
    return nn.BatchNorm2d(width) if spatial else nn.BatchNorm1d(width)


def _layernorm(channels: int, spatial: bool, models: int = 1) -> Any:
    """Over channels, height and width for a feature map (GroupNorm with one group, which
    needs no image size), over the features for the classifier's hidden layer; packed, one
    group per model (the same arithmetic as LayerNorm over each model's features)."""
    from torch import nn

    if spatial or models > 1:
        return nn.GroupNorm(models, models * channels)
    return nn.LayerNorm(channels)


def groups(channels: int) -> int:
    """GroupNorm's group count: 8, or fewer for narrow layers, so that a group holds at least
    4 channels (a group of one would normalise a single value to zero in the classifier)."""
    return math.gcd(channels, max(1, min(8, channels // 4)))


def _groupnorm(channels: int, spatial: bool, models: int = 1) -> Any:
    from torch import nn

    return nn.GroupNorm(models * groups(channels), models * channels)


NORMS: dict[str, Norm] = {
    "none": Norm("none", "no normalization", "tab:red", _identity),
    "batchnorm": Norm("batchnorm", "BatchNorm", "tab:blue", _batchnorm),
    "layernorm": Norm("layernorm", "LayerNorm", "tab:green", _layernorm),
    "groupnorm": Norm("groupnorm", "GroupNorm", "tab:purple", _groupnorm),
}


def get(name: str) -> Norm:
    """The normalisation called ``name``; a ValueError naming the choices otherwise."""
    if name not in NORMS:
        raise ValueError(f"unknown norm {name!r}; choose one of {list(NORMS)}")
    return NORMS[name]


def ordered(names: "Any") -> list[str]:
    """``names`` in the vocabulary's order, the control first (unknown names last, sorted)."""
    order = {name: i for i, name in enumerate(NORMS)}
    return sorted(set(names), key=lambda n: (order.get(n, len(order)), n))


def arms(names: "Any") -> list[str]:
    """The normalisations compared with the control, in the vocabulary's order."""
    return [n for n in ordered(names) if n != CONTROL]
