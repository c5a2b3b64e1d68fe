"""``python -m normcheck report``: a session's reports from the store's finished runs alone.

It takes the same options as a session, finds the runs of the experiment (of the grid, if one
is given), decides the family of hypotheses under ``--experiments`` the way the session's
plan would, and ends with the session's own ``decide_and_report``. Nothing is trained.
"""

from normcheck.plans import RoundsPlan
from normcheck.session import NothingToReport, StudySession
from normcheck.settings import SessionError, SessionOptions
from normcheck.tables import results_table
from normcheck.tracking import (
    Tracker,
    TrackingError,
    data_fingerprints,
    load_results,
    run_classes,
)
from normcheck.uris import redact


def rebuild(options: SessionOptions) -> StudySession:
    """Rebuild the reports; the returned session's ``outcome`` says what was written."""
    o = options
    if o.design and not o.grid:
        raise SessionError("--seeds auto needs --grid: the rounds are the grid's")
    try:
        tracker = Tracker.open(o.uri, o.experiment)
    except TrackingError as exc:
        raise SessionError(str(exc)) from exc
    runs = tracker.runs()
    results = load_results(tracker, runs)
    if o.grid:
        wanted = {c.case_id for c in o.grid.configs()}
        results = [r for r in results if r.config.case_id in wanted]
    if not results:
        raise NothingToReport(f"no finished normcheck runs in experiment {o.experiment!r} of "
                              f"{redact(o.uri)}" + (f" for grid {o.grid.name!r}" if o.grid
                                                    else ""))
    used = {r.run_id for r in results}
    every = data_fingerprints(runs, used)
    base = data_fingerprints(runs, used, o.grid.data.split_seed) if o.grid else set()
    if o.design and len(base) != 1:
        raise SessionError("--seeds auto needs the grid's runs on its base split on one "
                           f"data source; these have {len(base)}")
    session = StudySession(o, tracker=tracker)
    verdicts = []
    try:
        if o.design:
            plan = RoundsPlan(o.grid, o.family, o.design, None, lambda configs: [], tracker,
                              min(base), f"{redact(o.uri)}, experiment {o.experiment!r}")
            session.plan = plan
            rounds = plan.rebuild(results_table(results))
            kept = rounds.looks[-1].replicates if rounds.looks else 0
            results = [r for r in results if o.grid.replicate(r.config) < kept]
            verdicts = rounds.verdicts() if rounds.looks else []
        elif o.family.hypotheses:
            verdicts = o.family.evaluate(results_table(results))
    except SessionError:  # a study in rounds under another design: refused, not a note
        raise
    except ValueError as exc:  # e.g. runs without their paired partner
        session.outcome.notes.append(f"hypotheses not evaluated ({exc})")
    if not o.family.hypotheses:
        session.outcome.notes.append("hypotheses not evaluated: no test file under "
                                     "--experiments defines one (docs/hypotheses.md)")
    context = {"source": f"rebuilt from MLflow store {redact(o.uri)}, experiment "
                         f"`{o.experiment}`, {len(results)} finished runs",
               "data fingerprints": ", ".join(f"`{f}`" for f in sorted(every))}
    classes = run_classes(runs, used)
    if len(classes) == 1:
        context["classes"] = classes.pop()
    how = f"rebuilt from {redact(o.uri)}"
    session.decide_and_report(results, verdicts, context,
                              min(base) if len(base) == 1 else None, how)
    return session
