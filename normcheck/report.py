"""Reports: the per-run and per-configuration tables, their CSV files, and ``report.md``."""

import errno
import hashlib
import json
import math
from pathlib import Path

import pandas as pd

from normcheck import __version__, figures, norms, provenance
from normcheck.atomic import atomic_path
from normcheck.contrasts import Paired
from normcheck.family import PRIMARY, Family
from normcheck.norms import CONTROL
from normcheck.probe import PROBE_BATCH, PROBE_STEPS, SHIFT_EVERY
from normcheck.records import RunResult
from normcheck.registration import declared
from normcheck.stats import Estimated
from normcheck.tables import headline, results_table, summary_table
from normcheck.variance import Decomposition, decompose
from normcheck.verdicts import Verdict

FIGURES_STAMP = ".normcheck-figures.json"  # what the figures in a folder were drawn from


def write_tables(table: pd.DataFrame, summary: pd.DataFrame, folder: Path) -> list[Path]:
    """``metrics.csv`` (one row per run) and ``summary.csv`` (one per configuration)."""
    return [_write_csv(table, folder / "metrics.csv"), _write_csv(summary, folder / "summary.csv")]


def _write_csv(frame: pd.DataFrame, path: Path) -> Path:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
    return path


def _with_ci(summary: pd.DataFrame, metric: str) -> list[str]:
    return [f"{m:.3f} [{lo:.3f}, {hi:.3f}]" for m, lo, hi in
            zip(summary[f"{metric}_mean"], summary[f"{metric}_ci_low"],
                summary[f"{metric}_ci_high"], strict=True)]


def format_table(summary: pd.DataFrame) -> str:
    """The configurations as a fixed-width text table: the headline metrics as mean [95% CI]
    over replicates, the original study's best-epoch metric as mean +- sd."""
    columns = {"lr": summary["lr"].map("{:g}".format), "fc": summary["fc_units"]}
    if summary["dropout"].nunique() > 1:
        columns["dropout"] = summary["dropout"].map("{:g}".format)
    shown = pd.DataFrame({
        **columns, "norm": summary["norm"], "n": summary["n"],
        "final_val [95% CI]": _with_ci(summary, "final_val_acc"),
        "test [95% CI]": _with_ci(summary, "test_acc"),
        "best_val (original's)": [f"{m:.3f}±{s:.3f}" for m, s in
                                  zip(summary["best_val_acc_mean"],
                                      summary["best_val_acc_std"].fillna(0), strict=True)],
        "unstable": [f"{round(u * n)}/{n}" for u, n in
                     zip(summary["unstable_mean"], summary["n"], strict=True)],
        "beta": summary["beta_smoothness_mean"].map("{:.3g}".format),
        "seconds": summary["train_seconds_mean"].map("{:.1f}".format),
    })
    return shown.to_string(index=False)


def _rows(verdicts: list[Verdict]) -> list[tuple[str, ...]]:
    """One row per contrast: hypothesis, verdict, estimate, interval, level, claim, adjusted
    p, contrast; a hypothesis's second contrast leaves the first two cells empty."""
    rows = []
    for v in verdicts:
        if not v.parts:
            rows.append((v.name, v.outcome, "-", "-", "-", "-", "-", "not estimated"))
        for k, part in enumerate(v.parts):
            e = part.estimate
            value, interval = str(e).split(" ", 1)
            rows.append(("" if k else v.name, "" if k else v.outcome, value, interval,
                         f"{e.level:.2%}", part.claim, "" if k else f"{v.p_value:.4f}",
                         part.label))
    return rows


VERDICT_HEADER = ("hypothesis", "verdict", "estimate", "interval", "level", "holds if",
                  "adjusted p", "contrast")


def format_verdict_table(verdicts: list[Verdict]) -> str:
    """The verdicts as a fixed-width text table, one line per contrast."""
    rows = [VERDICT_HEADER, *_rows(verdicts)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) +
                     "  " + row[-1] for row in rows)


def format_verdicts(verdicts: list[Verdict]) -> str:
    """The verdicts as a markdown table, one row per contrast."""
    lines = ["| " + " | ".join(VERDICT_HEADER) + " |", "|---" * len(VERDICT_HEADER) + "|"]
    for row in _rows(verdicts):
        cells = list(row)
        if cells[1]:
            cells[1] = f"**{cells[1]}**"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _pivot(summary: pd.DataFrame, norm: str, dropout: float, column: str) -> pd.DataFrame:
    rows = summary[(summary["norm"] == norm) & (summary["dropout"] == dropout)]
    return rows.pivot(index="lr", columns="fc_units", values=column).sort_index(ascending=False)


class ReportError(OSError):
    """The report folder cannot be written; the message names it and what to do."""


def check_writable(folder: Path) -> None:
    """Create the folder and write a probe file in it, so a read-only or full folder is found
    before training, not after it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / ".normcheck-probe") as tmp:
            tmp.write_bytes(b"0" * 4096)
        (folder / ".normcheck-probe").unlink()
    except OSError as exc:
        why = exc.strerror or str(exc)
        fix = ("free space there" if exc.errno == errno.ENOSPC else
               "pass a folder you can write, or create it" if exc.errno in
               (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR) else "check it")
        raise ReportError(f"report folder {folder} cannot be written ({why}); {fix}, or pass "
                          "another --report-dir") from exc


def write_reports(results: list[RunResult], folder: Path, verdicts: list[Verdict] | None = None,
                  context: dict[str, str] | None = None, rounds: str = "",
                  family: Family | None = None) -> list[Path]:
    """Write metrics.csv, summary.csv, the figures and report.md; return the paths written.
    ``rounds``: markdown on the rounds of replicates (``--seeds auto``), shown after the
    verdicts; ``family``: the hypotheses the verdicts come from, judged again for the
    sensitivity section.

    Each file is replaced whole or not at all; a write that fails raises :class:`ReportError`.
    """
    try:
        return _write_all(results, folder, verdicts, context, rounds, family)
    except ReportError:
        raise
    except OSError as exc:
        raise ReportError(f"reports could not be written to {folder} ({exc.strerror or exc}); "
                          f"every file there is whole, old or new") from exc


def _heatmaps(summary: pd.DataFrame, folder: Path) -> list[Path]:
    """Final validation accuracy over lr x fc_units per norm (and dropout, when it varies),
    and each normalisation minus none."""
    written = []
    names = norms.ordered(summary["norm"].unique())
    dropouts = sorted(summary["dropout"].unique())
    for d in dropouts:
        tag = f"_dropout{d:g}" if len(dropouts) > 1 else ""
        at = f", dropout={d:g}" if len(dropouts) > 1 else ""
        for norm in names:
            written.append(figures.heatmap(
                _pivot(summary, norm, d, "final_val_acc_mean"),
                _pivot(summary, norm, d, "final_val_acc_std"),
                f"final validation accuracy, norm={norm}{at}\n(mean ± sd over replicates)",
                folder / f"heatmap_{norm}{tag}.png"))
        for arm in (norms.arms(names) if CONTROL in names else []):
            diff = (_pivot(summary, arm, d, "final_val_acc_mean") -
                    _pivot(summary, CONTROL, d, "final_val_acc_mean"))
            written.append(figures.heatmap(
                diff, None, f"{arm} minus {CONTROL}{at}\n(mean final validation accuracy)",
                folder / f"heatmap_{arm}_minus_{CONTROL}{tag}.png", diverging=True))
    return written


def _figures_key(table: pd.DataFrame, results: list[RunResult]) -> str:
    """A digest of everything the figures are drawn from, and the code that draws them."""
    digest = hashlib.sha256(f"{__version__}\n".encode())
    digest.update(table.drop(columns=["train_seconds"]).to_csv(index=False).encode())
    digest.update(json.dumps(sorted((r.config.case_id, [m.val_acc for m in r.history])
                                    for r in results)).encode())
    return digest.hexdigest()


def _draw_figures(results: list[RunResult], table: pd.DataFrame, summary: pd.DataFrame,
                  folder: Path, shares: Decomposition | None) -> list[Path]:
    """The figures, drawn again only when what they show changed: a rebuild of a session
    whose runs were all reused redraws nothing."""
    key, stamp = _figures_key(table, results), folder / FIGURES_STAMP
    try:
        drawn = json.loads(stamp.read_text())
    except (OSError, ValueError):
        drawn = {}
    if drawn.get("key") == key and all((folder / name).exists() for name in drawn["files"]):
        return [folder / name for name in drawn["files"]]
    written = _heatmaps(summary, folder)
    written.append(figures.learning_curves(results, folder / "learning_curves.png"))
    written.append(figures.instability(table, folder / "instability.png"))
    written.append(figures.smoothness(table, folder / "smoothness.png"))
    if table["ics_cosine"].notna().any():  # runs from before the probe have none
        written.append(figures.covariate_shift(results, folder / "covariate_shift.png"))
    if shares is not None:
        written.append(figures.variance_shares(shares, folder / "variance_shares.png"))
    with atomic_path(stamp) as tmp:
        tmp.write_text(json.dumps({"key": key, "files": [p.name for p in written]}))
    return written


def _write_all(results: list[RunResult], folder: Path, verdicts: list[Verdict] | None,
               context: dict[str, str] | None, rounds: str,
               family: Family | None) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    table = results_table(results)
    summary = summary_table(table)
    written = write_tables(table, summary, folder)
    shares = variance_shares(table)
    written += _draw_figures(results, table, summary, folder, shares)
    head = headline(table) if verdicts else None
    written.append(_write_markdown(folder / "report.md", table, summary, verdicts or [], head,
                                   context or {}, [p.name for p in written], rounds, family,
                                   shares))
    return written


def variance_shares(table: pd.DataFrame) -> Decomposition | None:
    """The variance shares of the headline metric, or None where the grid cannot give them
    (incomplete, one lr or width, fewer than three replicates)."""
    try:
        return decompose(Paired(table), declared()["family"]["metric"])
    except ValueError:
        return None


def _ci(e: Estimated) -> str:
    return e.format(3, sign=False)


def sensitivity(table: pd.DataFrame, verdicts: list[Verdict], family: Family) -> str:
    """Each verdict judged again, the same way, without replicate 0: the run that may have
    suggested the hypotheses (on the study's grids, the original's own seed and split)."""
    first = table.sort_values("seed").iloc[0]
    original = ": the original study's own" if int(first["seed"]) == 42 and \
        int(first["split_seed"]) == 42 else ""
    rest = table[table["seed"] != first["seed"]]
    if rest.empty:
        return "Not evaluated without replicate 0: the grid has one replicate."
    try:
        again = {v.name: v for v in family.evaluate(rest)}
    except ValueError as exc:
        return f"Not evaluated without replicate 0 ({exc})."
    lines = [f"Each verdict judged again as a fixed design at alpha "
             f"{declared()['family']['alpha']:g} without replicate 0 (seed {int(first['seed'])}"
             f", split {int(first['split_seed'])}{original}), on the other "
             f"{rest['seed'].nunique()} replicates:", "",
             "| hypothesis | verdict | without replicate 0 | its estimate |", "|---|---|---|---|"]
    for v in verdicts:
        w = again.get(v.name)
        lines.append(f"| {v.name} | {v.outcome} | {w.outcome if w else '-'} | "
                     f"{w.estimate if w and w.estimate else '-'} |")
    return "\n".join(lines)


def answer(verdicts: list[Verdict], head: dict[str, dict[str, Estimated]],
           table: pd.DataFrame, classes: str = "") -> str:
    """The study's answer in one paragraph: each claim with its number, interval and verdict,
    then the caveats."""
    replicates, cells = table["seed"].nunique(), len(table) // max(table["seed"].nunique(), 1)
    epochs = int(table["epochs"].iloc[0])
    reached = "; ".join(f"{norms.get(arm).label} reached a final validation accuracy of "
                        f"{_ci(head[arm]['final_val_acc'])} and test accuracy "
                        f"{_ci(head[arm]['test_acc'])}" for arm in norms.arms(head))
    lead = (f"**Answer.** Over {replicates} replicates of {cells} configurations (each "
            f"replicate its own seed{' and train/validation split' if _splits_vary(table) else ''}"
            f"), {reached}, against {_ci(head[CONTROL]['final_val_acc'])}"
            f" and {_ci(head[CONTROL]['test_acc'])} without normalization (each replicate's "
            "mean over every cell; the median replicate, with a 95% sign-test interval).")
    claims = " ".join(f"{v.plain} (**{v.name} {v.outcome}**)." for v in verdicts if v.plain)
    data = f" ({classes}; 32x32)" if classes else ""
    caveats = (f"Intervals in the claims are read at the level the family's procedure judged "
               f"each claim at, unless marked 95%. Caveats: one data set"
               f"{data}, {epochs} epochs, one small CNN trained with Adam, and "
               f"{replicates} replicates; a verdict says what these runs support, not more.")
    return " ".join([lead, claims, caveats])


def _labels(table: pd.DataFrame) -> str:
    """The normalisations compared with none, in prose: "BatchNorm", "BatchNorm or LayerNorm"."""
    labels = [norms.get(arm).label for arm in norms.arms(table["norm"].unique())]
    if not labels:
        return "normalization"
    return " or ".join([", ".join(labels[:-1]), labels[-1]] if len(labels) > 2 else labels)


def _splits_vary(table: pd.DataFrame) -> bool:
    return table["split_seed"].nunique() > 1


def _validation_error(table: pd.DataFrame) -> str:
    """The validation set's own sampling error, and whether the intervals include it."""
    n = int(table["n_val"].iloc[0])
    p = float(table["final_val_acc"].mean())
    half = 1.96 * math.sqrt(p * (1 - p) / n)
    where = ("Every replicate draws its own train/validation split, so this error is part of "
             "the replicate-to-replicate variation that every interval includes." if
             _splits_vary(table) else "Every replicate uses the same split, so this error is "
             "shared by all runs and is NOT in the intervals.")
    return (f"One run's validation accuracy is measured on {n} images: at p = {p:.2f} its own "
            f"sampling error is about ±{half:.3f} (95%, binomial). {where}")


def _family(verdicts: list[Verdict], hypotheses: Family | None) -> str:
    spec = declared()
    family = spec["family"]
    beside = "".join(f" {name} is registered in {where} ({own['registered']}, commit "
                     f"{own['commit']})." for name, own, where in
                     (hypotheses.registrations() if hypotheses else []))
    return (f"Registration: `hypotheses.toml` version {spec['version']} (registered "
            f"{spec['registered']}, {provenance.registration(spec)}; its history says what "
            f"changed from earlier versions and after seeing what).{beside} "
            f"{_families(verdicts, hypotheses)} What is controlled: in each family, the "
            f"chance that any claim made (a hypothesis holds, is non-inferior, superior, or "
            f"refuted) is false is at most {family['alpha']:g}, for any dependence between "
            "the claims; this is proved (a graphical closed test with weighted Bonferroni "
            "tests, Bretz et al. 2009), and benchmarks/calibration.py measures it under least "
            "favourable truths. Each claim's p-value is an exact sign test (or binomial test) "
            "over replicates, valid whatever the distribution of the replicates' contrasts; "
            "what it assumes is that replicates are independent (each its own seed and split). "
            "Each hypothesis's intervals are shown at the level its claim was judged at. "
            f"Metric: {family['metric_label']} (nothing selected on the validation set).")


def _families(verdicts: list[Verdict], hypotheses: Family | None) -> str:
    """Which verdicts form which family: the original's observations are the primary one,
    its explanations (``family = "explanatory"``) a second with its own alpha."""
    groups: dict[str, list[str]] = {}
    for v in verdicts:
        known = hypotheses is not None and v.hypothesis in hypotheses.names
        group = hypotheses.group(v.hypothesis) if known else PRIMARY
        groups.setdefault(group, []).append(v.name)
    if len(groups) == 1:
        return f"{', '.join(next(iter(groups.values())))} are one family."
    own = {PRIMARY: " (the original study's observations)"}
    return " ".join(f"{', '.join(names)} are the {group} family"
                    f"{own.get(group, ', with its own error rate')}."
                    for group, names in groups.items())


SHIFT_SAYS = {"holds": "survives: {arm} reduced internal covariate shift here",
              "refuted": "does not survive: {arm} increased internal covariate shift here, as "
                         "Santurkar et al. found",
              "inconclusive": "is not supported: these runs cannot tell whether {arm} changed "
                              "internal covariate shift"}


def explanation(verdicts: list[Verdict]) -> str:
    """Whether the original's explanation survives, per arm, and which mechanism the runs
    support: covariate shift (E1) or smoothness (H5), from their verdicts; empty when E1 was
    not asked."""
    by_name = {v.name: v for v in verdicts}
    sentences = []
    for e1 in (v for v in verdicts if v.hypothesis == "E1"):
        h5 = by_name.get("H5" + e1.name.removeprefix("E1"))
        label = norms.get(e1.arm).label
        if e1.estimate is None or not math.isfinite(e1.estimate.value):
            sentences.append(f"**The original's explanation** ({label} reduces internal "
                             "covariate shift) is not tested: these runs are from before the "
                             "covariate-shift probe (results version 0.4.0).")
            continue
        if h5 is None:
            mechanism = ""
        elif h5.outcome != "holds":
            mechanism = f"; smoothness is not supported either (H5 {h5.outcome})"
        elif e1.outcome == "holds":
            mechanism = ("; its landscape was smoother too (H5 holds): these runs do not tell "
                         "the two mechanisms apart")
        else:
            mechanism = ("; its landscape was smoother (H5 holds): smoothness, not reduced "
                         "covariate shift, is the mechanism these runs support")
        sentences.append(f"**The original's explanation** ({label} reduces internal covariate "
                         f"shift) {SHIFT_SAYS[e1.outcome].format(arm=label)} (E1 "
                         f"{e1.outcome}){mechanism}.")
    return " ".join(sentences)


def _write_markdown(path: Path, table: pd.DataFrame, summary: pd.DataFrame,
                    verdicts: list[Verdict], head: dict | None, context: dict[str, str],
                    files: list[str], rounds: str = "", hypotheses: Family | None = None,
                    shares: Decomposition | None = None) -> Path:
    def image(name: str, alt: str) -> str:
        return f"![{alt}]({name})" if name in files else ""

    heatmaps = " ".join(image(name, name.removesuffix(".png")) for name in files
                        if name.startswith("heatmap_"))
    h5 = next((v for v in verdicts if v.name == "H5"), None)
    sections = [
        "# normcheck report",
        answer(verdicts, head, table, context.get("classes", "")) if verdicts and head else
        "_No answer: the grid is incomplete, so the hypotheses were not evaluated._",
        explanation(verdicts),
        f"**Question.** Does {_labels(table)} make a compact CNN less sensitive to learning "
        "rate and "
        "model capacity, and does it stabilize training?"
        + (f" Classes: {context['classes']}." if context.get("classes") else ""),
        "## Verdicts",
        _family(verdicts, hypotheses) if verdicts else "",
        format_verdicts(verdicts) if verdicts else
        "_Hypotheses not evaluated: the grid is incomplete._",
        "\n".join(f"<details><summary>{v.name}: the numbers</summary>\n\n```\n{v.message}\n"
                  "```\n</details>" for v in verdicts),
        f"## Rounds of replicates\n\n{rounds}" if rounds else "",
        f"## Sensitivity\n\n{sensitivity(table, verdicts, hypotheses)}"
        if verdicts and hypotheses else "",
        "## Setup",
        "\n".join(f"- **{key}**: {value}" for key, value in context.items()),
        "## Accuracy",
        "Final validation accuracy and the test accuracy of the same (last-epoch) model: mean "
        "[95% CI] over replicates per configuration. Best-epoch validation accuracy is the "
        "original study's metric, chosen and measured on the same validation set, so it is "
        "biased upward; it is shown for comparison, and no hypothesis uses it.",
        _validation_error(table),
        heatmaps,
        "```\n" + format_table(summary) + "\n```",
        "## Learning curves",
        image("learning_curves.png", "validation accuracy per epoch"),
        "## Instability",
        "Every run: diverged (X), collapsed to chance (v) and loss-went-up (^) runs are marked.",
        image("instability.png", "instability"),
        "## Loss-landscape smoothness (H5)",
        f"Measured once per epoch on a fixed, class-balanced batch of {PROBE_BATCH} training "
        "images (drawn with the run's seed), moving along the update Adam would make from "
        f"that batch's gradient by {', '.join(f'{s:g}' for s in PROBE_STEPS[:-1])} and "
        f"{PROBE_STEPS[-1]:g} times its length (after Santurkar et al. 2018). "
        "Runs that collapsed or diverged are left out of H5 with their pair (hollow markers): "
        "a dead network is trivially smooth.",
        image("smoothness.png", "smoothness"),
        f"```\n{h5.message}\n```" if h5 else "",
        "## Internal covariate shift",
        "Measured with the smoothness probe, on the same batch along the same update, after "
        f"every {SHIFT_EVERY} epochs from the first, and after the last: for each "
        "layer after the first, the cosine between its gradient before and after the earlier "
        "layers take their step (Santurkar et al. 2018; 1 means no shift), the L2 distance "
        "between the two, and how far the layer's input mean moves, in standard deviations "
        "(the distributional sense of Ioffe and Szegedy 2015); means over the runs that did "
        "not diverge.",
        image("covariate_shift.png", "internal covariate shift") or
        "_Not measured: these runs are from before the probe (results version 0.4.0)._",
        "## Which factor matters most",
        "The original study's reflection, that the learning rate was the dominant factor, is "
        "about these shares (reported, not asserted).",
        image("variance_shares.png", "variance shares"),
        shares.markdown() if shares else "_Not computed: the grid needs two or more lrs and "
        "fc_units and three or more complete replicates._",
        "Columns of `metrics.csv` and `summary.csv` are described in normcheck's "
        "`docs/reports.md`.",
    ]
    with atomic_path(path) as tmp:
        tmp.write_text("\n\n".join(s for s in sections if s) + "\n")
    return path
