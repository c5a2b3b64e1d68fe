"""One test case per grid configuration: train it (once per session) and log it to MLflow."""

from normcheck.records import TrainConfig
from normcheck.session import StudySession


def test_configuration(normcheck_config: TrainConfig, normcheck_session: StudySession) -> None:
    """The configuration trains to the end, or stops early marked diverged; both are results."""
    result = normcheck_session.run(normcheck_config)
    assert result.history, f"{normcheck_config.case_id}: no epoch was recorded"
    assert result.diverged or len(result.history) == normcheck_config.epochs, (
        f"{normcheck_config.case_id}: stopped after {len(result.history)} of "
        f"{normcheck_config.epochs} epochs without diverging")
    assert result.run_id, f"{normcheck_config.case_id}: no MLflow run was recorded"
