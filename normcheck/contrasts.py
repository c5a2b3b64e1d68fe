"""Contrasts over replicates: what a hypothesis measures, written as array arithmetic that
keeps the replicate whole.

``Paired`` is the results table as arrays of shape (lr, fc_units, dropout, replicate, norm).
``paired.metric("final_val_acc")["batchnorm"]`` is one arm's ``Cells`` (lr, fc_units,
dropout, replicate); cells of two arms subtract pairwise (same replicate, same cell), and a
``Cells`` becomes one value per replicate (``Replicates``) only by a reduction over that
replicate's own cells: ``mean``, ``total``, ``lr_slope``, ``interaction``, ``capacity``. Every
statistic is then taken over the replicates' values (``normcheck.assertions``), so the unit
that varies, the replicate (its seed and its split, shared by every cell and arm), is the
unit every test resamples, by construction.
"""

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from normcheck import norms
from normcheck.norms import CONTROL
from normcheck.stats import Median


class GridMismatch(ValueError):
    """A contrast needs an axis value (or a second one) that the grid does not have."""


def require(condition: bool, why: str) -> None:
    """A hypothesis's own need of the grid: ``why`` (e.g. "needs lr=0.01 and a lower lr")
    is reported before anything trains when the grid does not meet it."""
    if not condition:
        raise GridMismatch(why)


class NotApplicable(Exception):  # noqa: N818 (a state, as pytest's Skipped)
    """A question this grid cannot pose (a hypothesis about three widths on a grid of two):
    the hypothesis is left out of the family on this grid and its test skipped, saying why."""


def applies(condition: bool, why: str) -> None:
    """A hypothesis's condition for being asked at all: unlike ``require``, a grid that does
    not meet it is no error; the hypothesis is skipped there with ``why``."""
    if not condition:
        raise NotApplicable(why)


def nanmean(a: np.ndarray, axis) -> np.ndarray:
    """``np.nanmean`` without the warning for a replicate that has no valid cell."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(a, axis=axis)


def slope_weights(values: list[float], transform: Callable[[float], float]) -> np.ndarray:
    """Least-squares slope weights over transformed axis values."""
    x = np.array([transform(v) for v in values], dtype=float)
    centered = x - x.mean()
    return centered / np.sum(centered ** 2)


def span_weights(values: list[float], transform: Callable[[float], float]) -> np.ndarray:
    """Slope weights scaled to the axis's span: the change from its lowest to highest value."""
    x = [transform(v) for v in values]
    return slope_weights(values, transform) * (max(x) - min(x))


class Paired:
    """The table as arrays of shape (lr, fc_units, dropout, replicate, norm), ``none`` first
    on the norm axis and the other normalisations after it, in ``normcheck.norms``'s order.

    A replicate is one seed (and the split it draws); it is shared by every cell and norm.
    """

    def __init__(self, table: pd.DataFrame) -> None:
        if "dropout" not in table:  # a table from before dropout was recorded
            table = table.assign(dropout=0.0)
        self.lrs = sorted(table["lr"].unique(), reverse=True)
        self.fcs = sorted(table["fc_units"].unique())
        self.dropouts = sorted(table["dropout"].unique())
        self.seeds = sorted(table["seed"].unique())
        self.norms = norms.ordered(table["norm"].unique())
        keys = ["lr", "fc_units", "dropout", "seed", "norm"]
        expected = (len(self.lrs) * len(self.fcs) * len(self.dropouts) * len(self.seeds) *
                    len(self.norms))
        if len(table.drop_duplicates(keys)) != expected or self.norms[0] != CONTROL:
            raise ValueError("every (lr, fc_units, dropout, seed) needs one run with each norm "
                             f"{self.norms}, {CONTROL!r} among them; the table has {len(table)} "
                             f"runs for {expected} slots")
        index = pd.MultiIndex.from_product([self.lrs, self.fcs, self.dropouts, self.seeds,
                                            self.norms])
        slots = table.set_index(keys).reindex(index)
        self._arrays = lambda metric: slots[metric].to_numpy(dtype=float).reshape(self.shape)

    @classmethod
    def of_arrays(cls, arrays: dict[str, np.ndarray], lrs: list[float], fcs: list[int],
                  names: list[str]) -> "Paired":
        """Arrays already shaped (lr, fc_units, dropout, replicate, norm), lr high first:
        simulated studies, without building a table."""
        paired = cls.__new__(cls)
        paired.lrs, paired.fcs, paired.norms = list(lrs), list(fcs), list(names)
        shape = next(iter(arrays.values())).shape
        paired.dropouts, paired.seeds = [0.0] * shape[2], list(range(shape[3]))
        paired._arrays = lambda metric: np.asarray(arrays[metric], dtype=float)
        return paired

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.lrs), len(self.fcs), len(self.dropouts), len(self.seeds),
                len(self.norms))

    def first(self, n: int) -> "Paired":
        """The first ``n`` replicates only (a look at a study in rounds)."""
        paired = Paired.__new__(Paired)
        paired.__dict__.update(self.__dict__)
        paired.seeds = self.seeds[:n]
        paired._arrays = lambda metric: self(metric)[:, :, :, :n]
        return paired

    @property
    def arms(self) -> list[str]:
        """The normalisations compared with none (norm axis 1, 2, ...)."""
        return self.norms[1:]

    def __call__(self, metric: str) -> np.ndarray:
        return self._arrays(metric)

    def dead(self, arm: str) -> np.ndarray:
        """Where the run of ``arm`` or of none collapsed or diverged, pair by pair: a dead
        network is trivially smooth and its gradients say nothing, so such pairs are left
        out of the probe's contrasts."""
        dead = np.zeros(self.shape[:-1], dtype=bool)
        for flag in ("collapsed", "diverged"):
            for norm in (CONTROL, arm):
                dead |= self.metric(flag)[norm].flagged()
        return dead

    def metric(self, name: str) -> "Metric":
        """One metric of every run, indexed by norm: ``paired.metric("test_acc")["none"]``."""
        return Metric(self, name)


@dataclass(frozen=True)
class Metric:
    """One metric of every run; ``metric[norm]`` is that arm's cells."""

    paired: Paired
    name: str

    def __getitem__(self, norm: str) -> "Cells":
        if norm not in self.paired.norms:
            raise GridMismatch(f"needs norm={norm!r}; the grid has norm={self.paired.norms}")
        values = self.paired(self.name)[..., self.paired.norms.index(norm)]
        return Cells(values, tuple(self.paired.lrs), tuple(self.paired.fcs))


@dataclass(frozen=True, eq=False)
class Cells:
    """One value per (lr, fc_units, dropout, replicate) of one arm, or a paired combination
    of two arms' cells (``a - b``, ``a / b``: the same replicate's same cell)."""

    values: np.ndarray
    lrs: tuple[float, ...]
    fcs: tuple[int, ...]

    def _with(self, values: np.ndarray) -> "Cells":
        return Cells(values, self.lrs, self.fcs)

    def _other(self, other: "Cells | float") -> "np.ndarray | float":
        if isinstance(other, Cells):
            if other.values.shape != self.values.shape:
                raise GridMismatch(f"cells of shape {self.values.shape} and "
                                   f"{other.values.shape} cannot be paired")
            return other.values
        return other

    def __sub__(self, other: "Cells | float") -> "Cells":
        return self._with(self.values - self._other(other))

    def __add__(self, other: "Cells | float") -> "Cells":
        return self._with(self.values + self._other(other))

    def __truediv__(self, other: "Cells | float") -> "Cells":
        with np.errstate(all="ignore"):
            return self._with(self.values / self._other(other))

    def log(self) -> "Cells":
        """The natural log of each cell (a log ratio: ``(a / b).log()``); NaN where undefined."""
        with np.errstate(all="ignore"):
            return self._with(np.log(self.values))

    def flagged(self) -> np.ndarray:
        """Where a flag metric (collapsed, diverged, unstable) is set: a boolean mask."""
        return np.nan_to_num(self.values) > 0

    def where(self, keep: np.ndarray) -> "Cells":
        """Only the cells where ``keep`` holds (and the value is finite); NaN elsewhere, so
        the reductions leave them out of their replicate."""
        valid = keep & np.isfinite(self.values)
        return self._with(np.where(valid, self.values, np.nan))

    def at_width(self, fc: int) -> "Cells":
        """The cells at one classifier width (kept as an fc_units axis of length one)."""
        if fc not in self.fcs:
            raise GridMismatch(f"needs fc_units={fc}; the grid has fc_units={list(self.fcs)}")
        j = self.fcs.index(fc)
        return Cells(self.values[:, j:j + 1], self.lrs, (fc,))

    def at(self, lr: float) -> "Cells":
        """The cells at one learning rate (kept as an lr axis of length one)."""
        if lr not in self.lrs:
            raise GridMismatch(f"needs lr={lr:g}; the grid has lr={list(self.lrs)}")
        i = self.lrs.index(lr)
        return Cells(self.values[i:i + 1], (lr,), self.fcs)

    def mean(self) -> "Replicates":
        """Each replicate's mean over its cells (NaN cells left out)."""
        return Replicates(nanmean(self.values, axis=(0, 1, 2)))

    def total(self) -> "Replicates":
        """Each replicate's sum over its cells: a count, for a flag such as ``unstable``."""
        return Replicates(np.nansum(self.values, axis=(0, 1, 2)))

    def lr_slope(self) -> "Replicates":
        """Each replicate's change per tenfold increase of lr (least squares over log10 lr),
        averaged over its other cells."""
        if len(self.lrs) < 2:
            raise GridMismatch(f"needs two or more learning rates; the grid has "
                               f"lr={list(self.lrs)}")
        per = np.tensordot(slope_weights(list(self.lrs), math.log10), self.values,
                           axes=([0], [0]))
        return Replicates(nanmean(per, axis=(0, 1)))

    def capacity(self) -> "Replicates":
        """Each replicate's change from the narrowest to the widest classifier (least squares
        over log2 fc_units), averaged over its other cells."""
        self._two_widths()
        per = np.tensordot(span_weights(list(self.fcs), math.log2), self.values,
                           axes=([0], [1]))
        return Replicates(nanmean(per, axis=(0, 1)))

    def interaction(self) -> "Replicates":
        """Each replicate's linear x linear lr x fc_units interaction over the grid's span
        (log10 lr, log2 fc_units). On a 2 x 2 grid it is (hi lr, hi fc - lo lr, hi fc) -
        (hi lr, lo fc - lo lr, lo fc)."""
        self._two_widths()
        if len(self.lrs) < 2:
            raise GridMismatch(f"needs two or more learning rates; the grid has "
                               f"lr={list(self.lrs)}")
        w = np.outer(span_weights(list(self.lrs), math.log10),
                     span_weights(list(self.fcs), math.log2))
        return Replicates(nanmean(np.tensordot(w, self.values, axes=([0, 1], [0, 1])), axis=0))

    def _two_widths(self) -> None:
        if len(self.fcs) < 2:
            raise GridMismatch(f"needs two or more fc_units; the grid has "
                               f"fc_units={list(self.fcs)}")


@dataclass(frozen=True, eq=False)
class Replicates:
    """One value per replicate (NaN where a replicate has none): what every test is over."""

    values: np.ndarray

    def __sub__(self, other: "Replicates | float") -> "Replicates":
        return Replicates(self.values - (other.values if isinstance(other, Replicates)
                                         else other))

    def __add__(self, other: "Replicates | float") -> "Replicates":
        return Replicates(self.values + (other.values if isinstance(other, Replicates)
                                         else other))

    def __neg__(self) -> "Replicates":
        return Replicates(-self.values)

    def median(self) -> Median:
        """The median replicate, with the sign test's p-values and interval."""
        return estimate(self.values)

    def more_often(self) -> "Share":
        """Of the replicates whose value is not 0, the share where it is above 0."""
        return Share(self)


@dataclass(frozen=True, eq=False)
class Share:
    """Of the replicates where ``of`` is not 0, the share where it is above 0 (e.g. where
    no-norm had more unstable runs than the arm, of those where the two differ)."""

    of: Replicates


def estimate(values: np.ndarray) -> Median:
    """The one place a replicates' median is made (a test swaps it to see the checks fail)."""
    return Median.of(values)
