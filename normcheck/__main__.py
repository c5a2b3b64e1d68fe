"""Command line: ``python -m normcheck report`` rebuilds the reports from an MLflow store alone."""

import argparse
import sys
from pathlib import Path

from normcheck import hypotheses
from normcheck.grid import GridError, load_grid
from normcheck.report import ReportError, format_verdict_table, results_table, write_reports
from normcheck.tracking import (
    DEFAULT_EXPERIMENT,
    Tracker,
    TrackingError,
    default_tracking_uri,
    load_results,
)


def report(args: argparse.Namespace) -> int:
    """Read the experiment's finished runs, decide the hypotheses, write the reports."""
    tracker = Tracker.open(args.tracking_uri, args.experiment)
    runs = tracker.runs()
    results = load_results(tracker, runs)
    if args.grid:
        wanted = {c.case_id for c in load_grid(args.grid).configs()}
        results = [r for r in results if r.config.case_id in wanted]
    if not results:
        print(f"normcheck report: no finished normcheck runs in experiment {args.experiment!r} "
              f"of {args.tracking_uri}" + (f" for grid {args.grid!r}" if args.grid else ""),
              file=sys.stderr)
        return 1
    used = {r.run_id for r in results}
    fingerprints = sorted({str(r.data.tags.get("normcheck.data_fingerprint")) for r in runs
                           if r.info.run_id in used})
    verdicts = []
    try:
        verdicts = hypotheses.evaluate(results_table(results))
    except ValueError as exc:  # e.g. runs without their paired partner
        print(f"normcheck report: hypotheses not evaluated ({exc})", file=sys.stderr)
    context = {"source": f"rebuilt from MLflow store {args.tracking_uri}, experiment "
                         f"`{args.experiment}`, {len(results)} finished runs",
               "data fingerprints": ", ".join(f"`{f}`" for f in fingerprints)}
    written = write_reports(results, Path(args.out), verdicts, context)
    if verdicts:
        print(format_verdict_table(verdicts))
    print(f"wrote {len(written)} files to {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m normcheck", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    rebuild = commands.add_parser("report", help="rebuild reports from an MLflow experiment")
    rebuild.add_argument("--tracking-uri", default=default_tracking_uri(),
                         help="MLflow store (default: $MLFLOW_TRACKING_URI, else "
                              "sqlite:///mlflow.db here)")
    rebuild.add_argument("--experiment", default=DEFAULT_EXPERIMENT,
                         help=f"experiment name [{DEFAULT_EXPERIMENT}]")
    rebuild.add_argument("--grid", default=None,
                         help="only the runs of this grid profile or TOML file")
    rebuild.add_argument("--out", default="reports", help="output folder [reports]")
    args = parser.parse_args(argv)
    try:
        return report(args)
    except (TrackingError, GridError, ReportError) as exc:
        print(f"normcheck report: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
