"""Command line: ``python -m normcheck report`` rebuilds the reports from an MLflow store alone.

Its options are the pytest plugin's, spelled and checked the same way (``normcheck.options``).
"""

import argparse
import sys

from normcheck.options import REPORT_OPTIONS, add_options
from normcheck.rebuild import rebuild
from normcheck.report import ReportError, format_verdict_table
from normcheck.session import NothingToReport
from normcheck.settings import SessionError, SessionOptions


def report(args: argparse.Namespace) -> int:
    """Read the experiment's finished runs, decide the hypotheses, write the reports."""
    options = SessionOptions.parse(args, args.experiments)
    out = rebuild(options).outcome
    if out.verdicts:
        print(format_verdict_table(out.verdicts))
    for note in out.notes:
        print(note, file=sys.stderr if note.startswith("hypotheses not") else sys.stdout)
    for error in out.errors:
        print(error, file=sys.stderr)
    print(f"wrote {len(out.written)} files to {options.report_dir}")
    return 2 if out.errors else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m normcheck", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    rebuild = commands.add_parser("report", help="rebuild reports from an MLflow experiment")
    add_options(rebuild.add_argument, REPORT_OPTIONS, grid={
        "default": None, "help": "only the runs of this grid profile or TOML file (default: "
                                 "every finished normcheck run of the experiment)"})
    args = parser.parse_args(argv)
    try:
        return report(args)
    except NothingToReport as exc:
        print(f"normcheck report: {exc}", file=sys.stderr)
        return 1
    except (SessionError, ReportError) as exc:
        print(f"normcheck report: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
