"""Each hypothesis decided on synthetic result tables: holds, refuted, and the edge cases."""

import pandas as pd
import pytest

from normcheck import hypotheses

LRS, FCS = (0.01, 0.003, 0.001), (32, 64)


def table(best: dict[tuple[float, int, str], float], final: dict | None = None,
          diverged: set | None = None, n_val: int = 480) -> pd.DataFrame:
    final, diverged = final or {}, diverged or set()
    return pd.DataFrame([{"lr": lr, "fc_units": fc, "norm": norm, "best_val_acc": acc,
                          "final_val_acc": final.get((lr, fc, norm), acc),
                          "diverged": (lr, fc, norm) in diverged, "n_val": n_val,
                          "num_classes": 3}
                         for (lr, fc, norm), acc in best.items()])


def study_like() -> dict:
    """BatchNorm flat at 0.65; no-norm good at low lr, poor at lr=0.01."""
    best = {}
    for fc in FCS:
        for lr in LRS:
            best[(lr, fc, "batchnorm")] = 0.65
            best[(lr, fc, "none")] = {0.01: 0.45, 0.003: 0.58, 0.001: 0.62}[lr]
    return best


def test_all_hold_on_study_like_results() -> None:
    verdicts = hypotheses.evaluate(table(study_like()))
    assert [v.name for v in verdicts] == ["H1", "H2", "H3"]
    assert all(v.passed for v in verdicts), "\n".join(v.message for v in verdicts)


def test_h1_tolerance_follows_the_validation_size() -> None:
    best = study_like()
    best[(0.003, 32, "none")] = 0.69  # 0.04 above batchnorm
    assert hypotheses.check_h1(table(best, n_val=480)).passed  # within 1.96 SE (~0.06)
    verdict = hypotheses.check_h1(table(best, n_val=20000))  # SE ~0.009: now a real deficit
    assert not verdict.passed
    assert "lr=0.003 fc=32: batchnorm 0.650 vs none 0.690 (diff -0.040" in verdict.message
    assert "FAIL" in verdict.message and "REFUTED" in verdict.message


def test_h2_accepts_divergence_or_collapse_as_instability() -> None:
    best = study_like()
    best[(0.01, 32, "none")] = 0.62  # as good as lr=0.001 ...
    assert not hypotheses.check_h2(table(best)).passed
    # ... but it diverged, or collapsed to chance at the end
    assert hypotheses.check_h2(table(best, diverged={(0.01, 32, "none")})).passed
    verdict = hypotheses.check_h2(table(best, final={(0.01, 32, "none"): 0.35}))
    assert verdict.passed and "collapsed" in verdict.message


def test_h2_refuted_when_batchnorm_is_unstable() -> None:
    verdict = hypotheses.check_h2(table(study_like(), final={(0.01, 64, "batchnorm"): 0.34}))
    assert not verdict.passed and "batchnorm@lr=0.01 final 0.340 -> UNSTABLE" in verdict.message


def test_h3_refuted_when_batchnorm_spreads_more() -> None:
    best = study_like()
    for lr in LRS:
        best[(lr, 64, "none")] = 0.60
    best[(0.001, 64, "batchnorm")] = 0.55
    verdict = hypotheses.check_h3(table(best))
    assert not verdict.passed
    assert "fc=64: spread over lr batchnorm 0.100 vs none 0.000 FAIL" in verdict.message


def test_verdicts_do_not_depend_on_row_order() -> None:
    t = table(study_like())
    shuffled = t.sample(frac=1, random_state=3).reset_index(drop=True)
    assert [v.passed for v in hypotheses.evaluate(t)] == \
        [v.passed for v in hypotheses.evaluate(shuffled)]
    assert [v.details for v in hypotheses.evaluate(t)] == \
        [v.details for v in hypotheses.evaluate(shuffled)]


@pytest.mark.parametrize("lrs, norms, problem", [
    ((0.003, 0.001), ("none", "batchnorm"), "H2 needs lr=0.01 and a lower lr"),
    ((0.01,), ("none", "batchnorm"), "H3 needs two or more learning rates"),
    ((0.01, 0.001), ("batchnorm",), "compares norm='none' with norm='batchnorm'"),
])
def test_grid_problems(lrs: tuple, norms: tuple, problem: str) -> None:
    assert any(problem in p for p in hypotheses.grid_problems(lrs, norms))


def test_declared_values_are_versioned_data() -> None:
    spec = hypotheses.declared()
    assert spec["H1"]["z"] == 1.96 and spec["H2"]["high_lr"] == 0.01
    assert all(spec[h]["statement"] for h in ("H1", "H2", "H3"))


def test_judge_without_a_record_fails_a_refuted_hypothesis() -> None:
    holds = hypotheses.Verdict("H1", "s", True, "numbers")
    refuted = hypotheses.Verdict("H1", "s", False, "numbers")
    assert hypotheses.judge(holds, None)[0] == "pass"
    outcome, message = hypotheses.judge(refuted, None)
    assert outcome == "fail" and "H1 REFUTED" in message and "numbers" in message


def test_judge_against_records() -> None:
    holds = hypotheses.Verdict("H2", "s", True, "numbers")
    refuted = hypotheses.Verdict("H2", "s", False, "numbers")
    assert hypotheses.judge(holds, "holds", "r.toml")[0] == "pass"
    assert hypotheses.judge(refuted, "refuted", "r.toml")[0] == "xfail"
    for verdict, recorded in ((holds, "refuted"), (refuted, "holds")):
        outcome, message = hypotheses.judge(verdict, recorded, "r.toml")
        assert outcome == "fail" and f"H2 changed: recorded as {recorded} in r.toml" in message


def test_recorded_verdicts_file(tmp_path) -> None:
    path = tmp_path / "r.toml"
    path.write_text('[[record]]\ngrid = "quick"\ndata_fingerprint = "abc"\nH1 = "holds"\n'
                    'H2 = "refuted"\nnote = "x"\n')
    records = hypotheses.load_recorded_verdicts(str(path))
    assert hypotheses.recorded_for(records, "quick", "abc") == {"H1": "holds", "H2": "refuted"}
    assert hypotheses.recorded_for(records, "quick", "other data") == {}
    path.write_text('[[record]]\ngrid = "quick"\ndata_fingerprint = "abc"\nH1 = "yes"\n')
    with pytest.raises(ValueError, match=r"verdicts must be 'holds' or 'refuted', got \{'H1': 'yes'\}"):
        hypotheses.load_recorded_verdicts(str(path))
    with pytest.raises(ValueError, match=r"cannot read recorded verdicts"):
        hypotheses.load_recorded_verdicts(str(tmp_path / "missing.toml"))
