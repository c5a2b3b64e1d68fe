"""The study's hypotheses, decided with statistics from a table of recorded runs.

Each check takes the metrics table (one row per run, as in ``metrics.csv``) and returns a
``Verdict``: the statistic, its bootstrap confidence interval, the margin, and the numbers
behind it. The statements and deciding values live in ``hypotheses.toml``, declared up front.
"""

import math
import tomllib
from dataclasses import dataclass
from importlib import resources

import numpy as np
import pandas as pd

from normcheck.stats import Estimate, holm, paired_pvalues, stratified_bootstrap

NO_NORM, BATCHNORM = "none", "batchnorm"
NORMS = (NO_NORM, BATCHNORM)  # axis order of the paired arrays
PASSING = {"holds", "superior", "non-inferior"}
VERDICTS = PASSING | {"inconclusive", "refuted"}


@dataclass(frozen=True)
class Verdict:
    name: str
    statement: str
    verdict: str  # holds | superior | non-inferior | inconclusive | refuted
    statistic: str
    estimate: Estimate | None
    margin: float
    details: str  # the numbers behind it, one line each

    @property
    def passed(self) -> bool:
        return self.verdict in PASSING

    @property
    def summary(self) -> str:
        ci = f"{self.estimate} (95% CI)" if self.estimate else "not estimated"
        return f"{self.statistic} = {ci}, margin {self.margin:g}"

    @property
    def message(self) -> str:
        return f"{self.name} {self.verdict.upper()}: {self.statement}\n  {self.summary}\n" \
               f"{self.details}"


def declared() -> dict[str, dict]:
    """The hypotheses' statements and deciding values, from ``hypotheses.toml``."""
    return tomllib.loads(resources.files("normcheck").joinpath("hypotheses.toml").read_text())


def grid_problems(lrs: tuple[float, ...], norms: tuple[str, ...]) -> list[str]:
    """Why a grid cannot test the hypotheses (empty when it can)."""
    spec = declared()
    problems = []
    if NO_NORM not in norms or BATCHNORM not in norms:
        problems.append(f"every hypothesis compares norm={NO_NORM!r} with norm={BATCHNORM!r}; "
                        f"the grid has norm={list(norms)}")
    high = spec["H2"]["high_lr"]
    if high not in lrs or min(lrs) >= high:
        problems.append(f"H2 needs lr={high:g} and a lower lr; the grid has lr={list(lrs)}")
    if len(lrs) < 2:
        problems.append(f"H3 needs two or more learning rates; the grid has lr={list(lrs)}")
    return problems


class Paired:
    """The table as arrays of shape (lr, fc_units, seed, norm): replicates paired by seed."""

    def __init__(self, table: pd.DataFrame) -> None:
        self.table = table
        self.lrs = sorted(table["lr"].unique(), reverse=True)
        self.fcs = sorted(table["fc_units"].unique())
        self.seeds = sorted(table["seed"].unique())
        expected = len(self.lrs) * len(self.fcs) * len(self.seeds) * len(NORMS)
        if len(table.drop_duplicates(["lr", "fc_units", "seed", "norm"])) != expected:
            raise ValueError("every (lr, fc_units, seed) needs one run with each norm; "
                             f"the table has {len(table)} runs for {expected} slots")

    def __call__(self, metric: str) -> np.ndarray:
        indexed = self.table.set_index(["lr", "fc_units", "seed", "norm"])[metric]
        index = pd.MultiIndex.from_product([self.lrs, self.fcs, self.seeds, list(NORMS)])
        return indexed.reindex(index).to_numpy(dtype=float).reshape(
            len(self.lrs), len(self.fcs), len(self.seeds), len(NORMS))


def _bootstrap(data: np.ndarray, statistic, alpha: float) -> Estimate:
    """Resample seeds within each (lr, fc_units) cell of an (lr, fc, seed, ...) array."""
    return stratified_bootstrap(data, statistic, strata_dims=2, confidence=1 - alpha)


def _direction(estimate: Estimate, margin: float) -> str:
    if estimate.low > margin:
        return "holds"
    if estimate.high < margin:
        return "refuted"
    return "inconclusive"


def _verdict(name: str, spec: dict, verdict: str, estimate: Estimate | None,
             lines: list[str]) -> Verdict:
    """A verdict carrying the statement, statistic and margin its pre-registration declares."""
    return Verdict(name, spec["statement"], verdict, spec["statistic"], estimate, spec["margin"],
                   "\n".join(lines))


def _too_few(name: str, spec: dict, paired: Paired) -> Verdict | None:
    if len(paired.seeds) >= spec["min_replicates"]:
        return None
    return _verdict(name, spec, "inconclusive", None,
                    [f"  needs at least {spec['min_replicates']} replicates (seeds) per cell; "
                     f"the grid has {len(paired.seeds)}"])


def check_h1(table: pd.DataFrame) -> Verdict:
    spec, paired = declared()["H1"], Paired(table)
    if (short := _too_few("H1", spec, paired)) is not None:
        return short
    acc = paired("best_val_acc")
    diff = acc[..., 1] - acc[..., 0]  # (lr, fc, seed)
    estimate = _bootstrap(diff, lambda d: np.nanmean(d, axis=(1, 2, 3)), spec["alpha"])
    wins = _bootstrap(np.sign(diff) * 0.5 + 0.5, lambda d: np.nanmean(d, axis=(1, 2, 3)),
                      spec["alpha"])
    if estimate.low > 0:
        verdict = "superior"
    elif estimate.low > -spec["margin"]:
        verdict = "non-inferior"
    elif estimate.high < -spec["margin"]:
        verdict = "refuted"
    else:
        verdict = "inconclusive"
    cells = diff.reshape(-1, diff.shape[-1])
    raw_p = paired_pvalues(cells)
    adjusted = holm(raw_p)
    lines = [f"  P(batchnorm > none) = {wins.value:.3f} [{wins.low:.3f}, {wins.high:.3f}] "
             f"over {diff.size} pairs (ties count half)",
             "  per cell (reported, not asserted): mean diff +- sd, paired t-test p, Holm p"]
    for k, (lr, fc) in enumerate((lr, fc) for lr in paired.lrs for fc in paired.fcs):
        lines.append(f"    lr={lr:g} fc={fc}: {np.nanmean(cells[k]):+.3f} +- "
                     f"{np.nanstd(cells[k], ddof=1) if cells.shape[1] > 1 else 0:.3f}  "
                     f"p={raw_p[k]:.3f}  holm={adjusted[k]:.3f}")
    return _verdict("H1", spec, verdict, estimate, lines)


def check_h2(table: pd.DataFrame) -> Verdict:
    spec, paired = declared()["H2"], Paired(table)
    if (short := _too_few("H2", spec, paired)) is not None:
        return short
    high = paired.lrs.index(spec["high_lr"])
    acc = paired("best_val_acc")
    unstable = paired("unstable")
    means = np.nanmean(acc[..., 0], axis=2)  # no-norm, (lr, fc)
    best = [int(np.nanargmax(means[:, f])) for f in range(len(paired.fcs))]
    # (fc, seed, 2): no-norm at its best lr and at the high lr, per fc_units
    pairs = np.stack([np.stack([acc[best[f], f, :, 0], acc[high, f, :, 0]], axis=-1)
                      for f in range(len(paired.fcs))])
    estimate = stratified_bootstrap(pairs, lambda d: np.nanmean(d[..., 0] - d[..., 1],
                                                                axis=(1, 2)),
                                    strata_dims=1, confidence=1 - spec["alpha"])
    spread = stratified_bootstrap(
        acc[high], lambda d: np.nanmean(np.nanstd(d[..., 0], axis=2, ddof=1), axis=1) /
        np.maximum(np.nanmean(np.nanstd(d[..., 1], axis=2, ddof=1), axis=1), 1e-9),
        strata_dims=1, confidence=1 - spec["alpha"])
    bn_unstable = int(np.nansum(unstable[high, ..., 1]))
    verdict = "refuted" if bn_unstable else _direction(estimate, spec["margin"])
    n = unstable[high, ..., 0].size
    lines = [f"  unstable runs at lr={spec['high_lr']:g} (diverged, collapsed or loss up): "
             f"none {int(np.nansum(unstable[high, ..., 0]))}/{n}, batchnorm {bn_unstable}/{n}",
             f"  spread of validation accuracy across seeds at lr={spec['high_lr']:g}, "
             f"sd none / sd batchnorm = {spread.value:.2f} [{spread.low:.2f}, {spread.high:.2f}]"]
    for f, fc in enumerate(paired.fcs):
        lines.append(f"    fc={fc}: none best lr={paired.lrs[best[f]]:g} mean "
                     f"{means[best[f], f]:.3f} vs lr={spec['high_lr']:g} mean {means[high, f]:.3f}"
                     f"; sd none {np.nanstd(acc[high, f, :, 0], ddof=1):.3f}, batchnorm "
                     f"{np.nanstd(acc[high, f, :, 1], ddof=1):.3f}")
    return _verdict("H2", spec, verdict, estimate, lines)


def _lr_sensitivity(d: np.ndarray) -> np.ndarray:
    """(batch, lr, fc, seed, norm) -> (batch, fc, norm): max - min over lr of the seed means."""
    means = np.nanmean(d, axis=3)
    return np.nanmax(means, axis=1) - np.nanmin(means, axis=1)


def check_h3(table: pd.DataFrame) -> Verdict:
    spec, paired = declared()["H3"], Paired(table)
    if (short := _too_few("H3", spec, paired)) is not None:
        return short
    acc = paired("best_val_acc")
    estimate = _bootstrap(acc, lambda d: np.mean(_lr_sensitivity(d)[..., 0] -
                                                 _lr_sensitivity(d)[..., 1], axis=1),
                          spec["alpha"])
    sens = _lr_sensitivity(acc[None])[0]
    lines = [f"  fc={fc}: lr-sensitivity none {sens[f, 0]:.3f}, batchnorm {sens[f, 1]:.3f}"
             for f, fc in enumerate(paired.fcs)]
    return _verdict("H3", spec, _direction(estimate, spec["margin"]), estimate, lines)


def check_h4(table: pd.DataFrame) -> Verdict:
    spec, paired = declared()["H4"], Paired(table)
    if (short := _too_few("H4", spec, paired)) is not None:
        return short
    acc, train = paired("best_val_acc"), paired("final_train_acc")

    def surface_spread(d: np.ndarray) -> np.ndarray:
        means = np.nanmean(d, axis=3)  # (batch, lr, fc, norm)
        spread = np.nanmax(means, axis=(1, 2)) - np.nanmin(means, axis=(1, 2))
        return spread[:, 0] - spread[:, 1]

    estimate = _bootstrap(acc, surface_spread, spec["alpha"])
    means = np.nanmean(acc, axis=2)
    lines = [f"  surface spread: none {np.ptp(means[..., 0]):.3f}, batchnorm "
             f"{np.ptp(means[..., 1]):.3f}",
             "  fc_units effect (reported, not asserted): mean validation / final train "
             "accuracy over lr and seeds"]
    for n, norm in enumerate(NORMS):
        cols = ", ".join(f"fc={fc}: {np.nanmean(acc[:, f, :, n]):.3f} / "
                         f"{np.nanmean(train[:, f, :, n]):.3f}" for f, fc in enumerate(paired.fcs))
        lines.append(f"    {norm}: {cols}")
    return _verdict("H4", spec, _direction(estimate, spec["margin"]), estimate, lines)


def check_h5(table: pd.DataFrame) -> Verdict:
    spec, paired = declared()["H5"], Paired(table)
    if (short := _too_few("H5", spec, paired)) is not None:
        return short
    beta = paired("beta_smoothness")
    with np.errstate(all="ignore"):
        log_ratio = np.log(beta[..., 0] / beta[..., 1])  # NaN where a run diverged
    estimate = _bootstrap(log_ratio, lambda d: np.nanmean(d, axis=(1, 2, 3)), spec["alpha"])
    loss_range, grad_change = paired("loss_range"), paired("grad_change")
    lines = ["  per lr, mean over fc_units and seeds: beta-smoothness / loss range / "
             "gradient change, none vs batchnorm"]
    for i, lr in enumerate(paired.lrs):
        lines.append(
            f"    lr={lr:g}: beta {np.nanmean(beta[i, ..., 0]):.2f} vs "
            f"{np.nanmean(beta[i, ..., 1]):.2f}; loss range {np.nanmean(loss_range[i, ..., 0]):.4f}"
            f" vs {np.nanmean(loss_range[i, ..., 1]):.4f}; gradient change "
            f"{np.nanmean(grad_change[i, ..., 0]):.3f} vs {np.nanmean(grad_change[i, ..., 1]):.3f}")
    verdict = "inconclusive" if math.isnan(estimate.value) else _direction(estimate,
                                                                            spec["margin"])
    return _verdict("H5", spec, verdict, estimate, lines)


CHECKS = {"H1": check_h1, "H2": check_h2, "H3": check_h3, "H4": check_h4, "H5": check_h5}


def evaluate(table: pd.DataFrame) -> list[Verdict]:
    """Every hypothesis's verdict on a complete table."""
    return [check(table) for check in CHECKS.values()]


def load_recorded_verdicts(path: str) -> list[dict]:
    """Records of verdicts from a TOML file: ``[[record]]`` tables with ``grid``,
    ``data_fingerprint`` and ``H<n> = "<verdict>"`` entries."""
    try:
        with open(path, "rb") as f:
            records = tomllib.load(f).get("record", [])
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: cannot read recorded verdicts ({exc})") from exc
    for record in records:
        if not {"grid", "data_fingerprint"} <= set(record):
            raise ValueError(f"{path}: every [[record]] needs grid and data_fingerprint")
        bad = {k: v for k, v in record.items() if k in CHECKS and v not in VERDICTS}
        if bad:
            raise ValueError(f"{path}: verdicts must be one of {sorted(VERDICTS)}, got {bad}")
    return records


def recorded_for(records: list[dict], grid: str, fingerprint: str) -> dict[str, str]:
    """The verdicts recorded for this grid and data (empty when no record matches)."""
    for record in records:
        if record["grid"] == grid and record["data_fingerprint"] == fingerprint:
            return {k: v for k, v in record.items() if k in CHECKS}
    return {}


def judge(verdict: Verdict, recorded: str | None, source: str | None = None,
          inconclusive: str = "fail") -> tuple[str, str]:
    """How a test reports a verdict: ``("pass" | "fail" | "xfail" | "warn", message)``.

    Without a record, a refuted hypothesis fails, and so does an inconclusive one unless
    ``inconclusive="warn"``. With a record, the verdict must match it: a recorded failing
    verdict is an expected failure (xfail), and any change fails.
    """
    got = verdict.verdict
    if recorded is None:
        if verdict.passed:
            return "pass", verdict.message
        if got == "inconclusive" and inconclusive == "warn":
            return "warn", verdict.message
        return "fail", verdict.message
    if recorded != got:
        return "fail", (f"{verdict.name} changed: recorded as {recorded} in {source}, "
                        f"now {got}.\n{verdict.message}")
    if not verdict.passed:
        return "xfail", f"{got}, as recorded in {source}.\n{verdict.message}"
    return "pass", verdict.message
