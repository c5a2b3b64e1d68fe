"""One vocabulary of normalisations: every module reads ``normcheck.norms``, so adding one is
one entry there, seen through the grid, the model, training, the table, verdicts and figures."""

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import OBSERVATIONS, fake_result, tiny_data
from torch import nn

from normcheck import norms
from normcheck.grid import load_grid
from normcheck.model import CompactCNN
from normcheck.norms import Norm
from normcheck.records import TrainConfig
from normcheck.report import write_reports
from normcheck.tables import results_table
from normcheck.train import train


def kinds(model: nn.Module) -> list[str]:
    return [type(m).__name__ for m in model.modules() if "Norm" in type(m).__name__]


def test_each_normalisation_builds_its_layers() -> None:
    assert kinds(CompactCNN(32, "none")) == []
    assert kinds(CompactCNN(32, "batchnorm")) == ["BatchNorm2d", "BatchNorm2d", "BatchNorm1d"]
    assert kinds(CompactCNN(32, "layernorm")) == ["GroupNorm", "GroupNorm", "LayerNorm"]
    groupnorm = [m for m in CompactCNN(32, "groupnorm").modules() if isinstance(m, nn.GroupNorm)]
    assert [(m.num_groups, m.num_channels) for m in groupnorm] == [(4, 16), (8, 32), (8, 32)]
    layernorm = [m for m in CompactCNN(32, "layernorm").modules() if isinstance(m, nn.GroupNorm)]
    assert all(m.num_groups == 1 for m in layernorm)  # over channels, height and width


@pytest.mark.parametrize("channels, groups", [(1, 1), (4, 1), (8, 2), (16, 4), (32, 8),
                                              (128, 8), (100, 4), (12, 3)])
def test_group_count_divides_the_channels_and_keeps_groups_of_four(channels: int,
                                                                    groups: int) -> None:
    assert norms.groups(channels) == groups and channels % groups == 0


def test_the_control_comes_first_and_arms_follow_the_vocabulary() -> None:
    assert norms.ordered(["groupnorm", "none", "batchnorm"]) == ["none", "batchnorm",
                                                                  "groupnorm"]
    assert norms.arms(["layernorm", "none"]) == ["layernorm"]
    assert load_grid("norms").arms == ["batchnorm", "layernorm", "groupnorm"]
    with pytest.raises(ValueError, match=r"unknown norm 'weightnorm'; choose one of \['none'"):
        norms.get("weightnorm")


def instance_norm(channels: int, spatial: bool) -> nn.Module:
    return nn.GroupNorm(channels, channels) if spatial else nn.Identity()


@pytest.fixture
def fakenorm(monkeypatch: pytest.MonkeyPatch) -> str:
    """A normalisation added the way a user adds one: one entry in ``norms.NORMS``."""
    monkeypatch.setitem(norms.NORMS, "fakenorm",
                        Norm("fakenorm", "FakeNorm", "tab:orange", instance_norm))
    return "fakenorm"


def test_a_new_normalisation_is_one_entry(fakenorm: str, tmp_path: Path) -> None:
    # the grid accepts it
    (tmp_path / "fake.toml").write_text(
        'extends = "quick"\n[grid]\nnorm = ["none", "batchnorm", "fakenorm"]\n')
    grid = load_grid(str(tmp_path / "fake.toml"))
    assert grid.arms == ["batchnorm", "fakenorm"]
    assert {c.norm for c in grid.configs()} == {"none", "batchnorm", "fakenorm"}
    # the model and the training loop use it
    assert "GroupNorm" in kinds(CompactCNN(8, fakenorm))
    result, _ = train(TrainConfig(lr=0.01, fc_units=8, norm=fakenorm, epochs=1,
                                  base_channels=2), tiny_data())
    assert result.config.norm == fakenorm and len(result.history) == 1
    # the table, the hypotheses (each arm against none, one family) and the reports grow
    runs = [fake_result(lr, fc, norm, seed, 0.5 + 0.05 * (norm != "none") + seed / 100)
            for lr in (0.01, 0.001) for fc in (32, 64)
            for norm in ("none", "batchnorm", fakenorm) for seed in (1, 2, 3)]
    table = results_table(runs)
    assert list(dict.fromkeys(table["norm"])) == ["none", "batchnorm", fakenorm]
    verdicts = OBSERVATIONS.evaluate(table)
    assert [v.name for v in verdicts][:6] == ["H1-batchnorm", "H2-batchnorm", "H3-batchnorm",
                                               "H4-batchnorm", "H5-batchnorm", "H1-fakenorm"]
    assert len(verdicts) == 10
    fake_h1 = verdicts[5]
    assert fake_h1.statement.startswith("FakeNorm's validation accuracy is at least no-norm's")
    assert "fakenorm - none" in fake_h1.parts[0].label and fake_h1.arm == fakenorm
    written = {p.name for p in write_reports(runs, tmp_path / "out", verdicts)}
    assert {"heatmap_fakenorm.png", "heatmap_fakenorm_minus_none.png"} <= written
    report = (tmp_path / "out" / "report.md").read_text()
    assert "FakeNorm reached a final validation accuracy of" in report
    assert "Does BatchNorm or FakeNorm make a compact CNN" in report
    assert "**H5-fakenorm " in report


def test_one_arm_keeps_the_plain_names() -> None:
    runs = [fake_result(lr, fc, norm, seed, 0.5 + 0.05 * (norm != "none") + seed / 100)
            for lr in (0.01, 0.001) for fc in (32, 64) for norm in ("none", "layernorm")
            for seed in (1, 2, 3)]
    verdicts = OBSERVATIONS.evaluate(results_table(runs))
    assert [v.name for v in verdicts] == ["H1", "H2", "H3", "H4", "H5"]
    assert verdicts[0].statement.startswith("LayerNorm's validation accuracy")


def test_grids_tables_and_reports_load_without_torch() -> None:
    code = ("import sys; import normcheck.records, normcheck.grid, normcheck.report, "
            "normcheck.regression, normcheck.options, normcheck.norms, normcheck.session, "
            "normcheck.claims, normcheck.cluster; "
            "normcheck.grid.load_grid('norms'); print(sorted(m for m in sys.modules "
            "if m.split('.')[0] in ('torch', 'torchvision', 'mlflow', 'ray', 'psycopg')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
