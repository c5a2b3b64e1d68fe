"""The study's hypotheses, decided from a table of recorded results.

Each check takes the metrics table (one row per configuration, as in ``metrics.csv``) and
returns a ``Verdict`` whose message shows the numbers behind it. The deciding values live in
``hypotheses.toml``, declared up front.
"""

import math
import tomllib
from dataclasses import dataclass
from importlib import resources

import pandas as pd

NO_NORM, BATCHNORM = "none", "batchnorm"


@dataclass(frozen=True)
class Verdict:
    name: str
    statement: str
    passed: bool
    details: str  # the numbers, one line per cell or line of the grid

    @property
    def message(self) -> str:
        word = "holds" if self.passed else "REFUTED"
        return f"{self.name} {word}: {self.statement}\n{self.details}"


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


def _se_diff(p1: float, p2: float, n: int) -> float:
    """Binomial standard error of the difference of two accuracies on n images each."""
    clip = lambda p: min(max(p, 0.0), 1.0)  # noqa: E731  (NaN-safe for diverged runs)
    return math.sqrt((clip(p1) * (1 - clip(p1)) + clip(p2) * (1 - clip(p2))) / n)


def _cells(table: pd.DataFrame, value: str) -> pd.DataFrame:
    """Rows (lr, fc_units), columns none/batchnorm, of one metric."""
    return table.pivot_table(index=["lr", "fc_units"], columns="norm", values=value,
                             aggfunc="first").sort_index(ascending=[False, True])


def check_h1(table: pd.DataFrame) -> Verdict:
    spec = declared()["H1"]
    acc = _cells(table, "best_val_acc")
    n_val = int(table["n_val"].min())
    lines, ok = [], True
    for (lr, fc), row in acc.iterrows():
        bn, none = row[BATCHNORM], row[NO_NORM]
        tol = spec["z"] * _se_diff(bn, none, n_val)
        cell_ok = bn >= none - tol
        ok &= bool(cell_ok)
        lines.append(f"  lr={lr:g} fc={fc}: batchnorm {bn:.3f} vs none {none:.3f} "
                     f"(diff {bn - none:+.3f}, tolerance {tol:.3f}) {'ok' if cell_ok else 'FAIL'}")
    return Verdict("H1", spec["statement"], ok, "\n".join(lines))


def check_h2(table: pd.DataFrame) -> Verdict:
    spec = declared()["H2"]
    high, margin = spec["high_lr"], spec["collapse_margin"]
    chance = 1 / int(table["num_classes"].iloc[0])
    n_val = int(table["n_val"].min())
    low = table["lr"].min()

    def collapsed(run: pd.Series) -> bool:
        return abs(run["final_val_acc"] - chance) <= margin

    lines, ok = [], True
    for fc, line in table.groupby("fc_units"):
        run = line.set_index(["lr", "norm"])
        none_hi, none_lo = run.loc[(high, NO_NORM)], run.loc[(low, NO_NORM)]
        bn_hi = run.loc[(high, BATCHNORM)]
        gap = none_lo["best_val_acc"] - none_hi["best_val_acc"]
        tol = spec["z"] * _se_diff(none_lo["best_val_acc"], none_hi["best_val_acc"], n_val)
        signals = {"diverged": bool(none_hi["diverged"]), "collapsed": collapsed(none_hi),
                   f"behind lr={low:g} by {gap:.3f} > {tol:.3f}": gap > tol}
        reasons = [name for name, hit in signals.items() if hit]
        bn_stable = not bool(bn_hi["diverged"]) and not collapsed(bn_hi)
        ok &= bool(reasons) and bn_stable
        lines.append(
            f"  fc={fc}: none@lr={high:g} best {none_hi['best_val_acc']:.3f} final "
            f"{none_hi['final_val_acc']:.3f} vs none@lr={low:g} best "
            f"{none_lo['best_val_acc']:.3f} -> "
            f"{'unstable: ' + ', '.join(reasons) if reasons else 'STABLE'}"
            f" (gap {gap:+.3f}, tolerance {tol:.3f}); batchnorm@lr={high:g} final "
            f"{bn_hi['final_val_acc']:.3f} -> {'stable' if bn_stable else 'UNSTABLE'}"
            f" (chance {chance:.3f}, collapse margin {margin})")
    return Verdict("H2", spec["statement"], ok, "\n".join(lines))


def check_h3(table: pd.DataFrame) -> Verdict:
    spec = declared()["H3"]
    acc = table.pivot_table(index="lr", columns=["fc_units", "norm"], values="best_val_acc",
                            aggfunc="first")
    lines, ok = [], True
    for fc in sorted(table["fc_units"].unique()):
        spread = {norm: acc[(fc, norm)].max() - acc[(fc, norm)].min()
                  for norm in (BATCHNORM, NO_NORM)}
        line_ok = spread[BATCHNORM] < spread[NO_NORM]
        ok &= bool(line_ok)
        lines.append(f"  fc={fc}: spread over lr batchnorm {spread[BATCHNORM]:.3f} vs none "
                     f"{spread[NO_NORM]:.3f} {'ok' if line_ok else 'FAIL'}")
    return Verdict("H3", spec["statement"], ok, "\n".join(lines))


CHECKS = {"H1": check_h1, "H2": check_h2, "H3": check_h3}


def evaluate(table: pd.DataFrame) -> list[Verdict]:
    """Every hypothesis's verdict on a complete table."""
    return [check(table) for check in CHECKS.values()]



def load_recorded_verdicts(path: str) -> list[dict]:
    """Records of verdicts from a TOML file: ``[[record]]`` tables with ``grid``,
    ``data_fingerprint`` and ``H<n> = "holds" | "refuted"`` entries."""
    try:
        with open(path, "rb") as f:
            records = tomllib.load(f).get("record", [])
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: cannot read recorded verdicts ({exc})") from exc
    for record in records:
        if not {"grid", "data_fingerprint"} <= set(record):
            raise ValueError(f"{path}: every [[record]] needs grid and data_fingerprint")
        bad = {k: v for k, v in record.items() if k in CHECKS and v not in ("holds", "refuted")}
        if bad:
            raise ValueError(f"{path}: verdicts must be 'holds' or 'refuted', got {bad}")
    return records


def recorded_for(records: list[dict], grid: str, fingerprint: str) -> dict[str, str]:
    """The verdicts recorded for this grid and data (empty when no record matches)."""
    for record in records:
        if record["grid"] == grid and record["data_fingerprint"] == fingerprint:
            return {k: v for k, v in record.items() if k in CHECKS}
    return {}


def judge(verdict: Verdict, recorded: str | None, source: str | None = None) -> tuple[str, str]:
    """How a test reports a verdict: ``("pass" | "fail" | "xfail", message)``.

    Without a record, a refuted hypothesis fails. With one, the verdict must match it: a
    recorded refutation is an expected failure, and any change fails.
    """
    got = "holds" if verdict.passed else "refuted"
    if recorded is None:
        return ("pass" if verdict.passed else "fail"), verdict.message
    if recorded != got:
        return "fail", (f"{verdict.name} changed: recorded as {recorded} in {source}, "
                        f"now {got}.\n{verdict.message}")
    if got == "refuted":
        return "xfail", f"refuted, as recorded in {source}.\n{verdict.message}"
    return "pass", verdict.message
