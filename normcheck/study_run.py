"""The study in MLflow: one run that holds a study's verdicts, reports and registration, with
the study's training runs grouped under it.

A study is a grid on one data split under one registration version, in one experiment: the
sessions that resume it, and ``python -m normcheck report`` rebuilding it, update the same
study run (found by its ``normcheck.study`` tag), and a new registration version, grid or data
is a new study. Training runs are grouped under the first study that used them
(``mlflow.parentRunId``, which the MLflow UI nests) and linked to every study that used them by
a ``normcheck.study.<key>`` tag, so a run the norms grid shares with the full grid is found from
both. Nothing is logged twice: metrics, tags and links are written only where they changed.
A session that ends with runs missing (interrupted) leaves the study run as it was.
"""

import hashlib
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from normcheck import __version__
from normcheck.provenance import commit
from normcheck.tracking import Tracker
from normcheck.verdicts import Verdict

KIND_TAG = "normcheck.kind"  # "study" on a study run; training runs have none
STUDY_TAG = "normcheck.study"  # a study run's key
LINK_PREFIX = "normcheck.study."  # + key, on each training run a study used: the study run id
PARENT_TAG = "mlflow.parentRunId"  # MLflow's own nesting


@dataclass(frozen=True)
class StudyKey:
    """What makes two sessions one study: the grid, its base split's data, the registration."""

    grid: str
    fingerprint: str
    registration: int

    @property
    def key(self) -> str:
        text = f"{self.grid}|{self.fingerprint}|{self.registration}"
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def name(self) -> str:
        return f"study {self.grid} (registration v{self.registration})"


def verdict_metrics(verdicts: Iterable[Verdict]) -> dict[str, float]:
    """Each verdict's numbers as metrics: ``H1.estimate``, ``.low``, ``.high``, ``.level``
    (of its first contrast, at the level the family judged it) and ``.p_adjusted``."""
    metrics: dict[str, float] = {}
    for v in verdicts:
        metrics[f"{v.name}.p_adjusted"] = v.p_value
        if v.estimate is not None:
            e = v.estimate
            metrics.update({f"{v.name}.estimate": e.value, f"{v.name}.low": e.low,
                            f"{v.name}.high": e.high, f"{v.name}.level": e.level})
    # an unbounded side (MLflow would store it as the largest float) or an estimate no
    # replicate gave (NaN) is left out, so no metric reads as a number it is not
    return {k: x for k, x in metrics.items() if math.isfinite(x)}


def study_tags(study: StudyKey, verdicts: Iterable[Verdict], spec: dict) -> dict[str, str]:
    """The study run's tags: what it is, each verdict's outcome, the family's control."""
    family = spec.get("family", {})
    return {KIND_TAG: "study", STUDY_TAG: study.key, "normcheck.grid": study.grid,
            "normcheck.data_fingerprint": study.fingerprint,
            "normcheck.registration_version": str(study.registration),
            "normcheck.family_control": f"{family.get('control', '')}, alpha "
                                        f"{family.get('alpha', '')} per family",
            "normcheck.version": __version__, "normcheck.commit": commit() or "unknown",
            **{f"verdict.{v.name}": v.outcome for v in verdicts}}


class StudyRun:
    """Writes one study's run into ``tracker``'s experiment."""

    def __init__(self, tracker: Tracker, study: StudyKey) -> None:
        self.tracker, self.study = tracker, study

    def _find(self) -> Any:
        with self.tracker.locked():
            found = self.tracker.client.search_runs(
                [self.tracker.experiment_id], f"tags.`{STUDY_TAG}` = '{self.study.key}'",
                order_by=["attributes.start_time ASC"], max_results=1)
        return found[0] if found else None

    def publish(self, verdicts: list[Verdict], spec: dict, registrations: dict[str, str],
                files: list[Path], run_ids: Iterable[str]) -> str:
        """Create or update the study run with ``verdicts``, the ``registrations`` (artifact
        name -> text: hypotheses.toml and any beside the experiments) and the report
        ``files``; link the training runs ``run_ids``; return its id."""
        from mlflow.entities import Metric, RunTag

        client = self.tracker.client
        run = self._find()
        with self.tracker.locked():
            if run is None:
                run_id = client.create_run(self.tracker.experiment_id,
                                           run_name=self.study.name).info.run_id
                known_metrics: dict[str, float] = {}
                known_tags: dict[str, str] = {}
            else:
                run_id = run.info.run_id
                known_metrics, known_tags = run.data.metrics, run.data.tags
            metrics = {k: x for k, x in verdict_metrics(verdicts).items()
                       if known_metrics.get(k) != x}
            tags = {k: t for k, t in study_tags(self.study, verdicts, spec).items()
                    if known_tags.get(k) != t}
            now = int(time.time() * 1000)
            client.log_batch(run_id, metrics=[Metric(k, x, now, 0) for k, x in metrics.items()],
                             tags=[RunTag(k, t) for k, t in tags.items()])
            for name, text in registrations.items():
                client.log_text(run_id, text, name)
            for path in files:  # the same artifact path each time: replaced, not added
                client.log_artifact(run_id, str(path),
                                    "figures" if path.suffix == ".png" else None)
            client.set_terminated(run_id, "FINISHED")
        self._link(run_id, set(run_ids))
        return run_id

    def _link(self, run_id: str, run_ids: set[str]) -> None:
        """Tag each training run with this study (one query finds those already tagged); nest
        it under the study if it has no parent yet."""
        from mlflow.entities import RunTag

        link = LINK_PREFIX + self.study.key
        runs = {r.info.run_id: r for r in self.tracker.runs()}
        for rid in sorted(run_ids & runs.keys()):
            tags = runs[rid].data.tags
            new = [] if tags.get(link) == run_id else [RunTag(link, run_id)]
            if PARENT_TAG not in tags:
                new.append(RunTag(PARENT_TAG, run_id))
            if new:
                with self.tracker.locked():
                    self.tracker.client.log_batch(rid, tags=new)
