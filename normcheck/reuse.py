"""What the store already has: a configuration's FINISHED run is reused, not trained again,
and runs nobody alive owns (a killed session's RUNNING ones, FAILED ones) are marked stale so
it trains again. Both happen under the configuration's claim (``normcheck.claims``)."""

import logging

from normcheck.records import RunResult, TrainConfig
from normcheck.results import ResultsFolder
from normcheck.tracking import Tracker, load_results

log = logging.getLogger("normcheck")


def adopt_finished(results: ResultsFolder, tracker: Tracker, configs: list[TrainConfig]) -> None:
    """Take every configuration with a FINISHED run in the experiment as this session's
    result, in one query, before any process trains: a session whose runs are all in the
    store then trains and queries nothing more."""
    finished = tracker.finished_by_hash()
    for config in results.missing(configs):
        run = finished.get(results.key(config))
        if run is not None:
            results.put(config, load_results(tracker, [run])[0], "reused")


def finished_or_clear(tracker: Tracker, key: str, config: TrainConfig,
                      retrain: bool) -> RunResult | None:
    """Under the configuration's claim: its finished run (unless ``retrain``), else None
    after marking the runs nobody alive owns stale, so it can be trained."""
    if not retrain:
        found = tracker.finished(key)
        if found is not None:
            log.info("%s: reused MLflow run %s", config.case_id, found.run_id)
            return found
    stale = tracker.mark_stale(key, "left unfinished by an earlier session; trained again")
    if stale:
        log.warning("%s: marked stale runs %s, training again", config.case_id, ", ".join(stale))
    return None
