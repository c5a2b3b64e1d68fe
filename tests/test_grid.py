"""Grid profiles and TOML files: what loads, and what is rejected with a clear message."""

from pathlib import Path

import pytest

from normcheck.grid import GridError, load_grid, profile_names


def test_profiles() -> None:
    assert set(profile_names()) >= {"full", "quick", "dropout"}
    full = load_grid("full")
    assert len(full.configs()) == 18 * 10 and full.seeds == 10
    assert (full.lr, full.fc_units, full.norm, full.dropout) == (
        (0.01, 0.003, 0.001), (32, 64, 128), ("none", "batchnorm"), (0.0,))
    first = full.configs()[0]
    assert (first.epochs, first.batch_size, first.weight_decay, first.seed) == (5, 64, 1e-4, 42)
    assert first.dropout == 0.0 and first.base_channels == 16  # the original study's settings
    assert full.data.protocol == "seed" and full.data.classes == ("cat", "dog", "horse")
    # replicate i draws its own split; replicate 0's is the original study's
    assert full.resample_split and {(c.seed, c.split_seed) for c in full.configs()} == {
        (42 + i, 42 + i) for i in range(10)}
    quick = load_grid("quick")
    assert [c.cell_id for c in quick.configs()[::quick.seeds]] == [
        "lr=0.01-fc=32-norm=none", "lr=0.01-fc=32-norm=batchnorm",
        "lr=0.01-fc=128-norm=none", "lr=0.01-fc=128-norm=batchnorm",
        "lr=0.001-fc=32-norm=none", "lr=0.001-fc=32-norm=batchnorm",
        "lr=0.001-fc=128-norm=none", "lr=0.001-fc=128-norm=batchnorm"]
    assert [c.case_id for c in quick.configs()[:2]] == ["lr=0.01-fc=32-norm=none-seed=42",
                                                       "lr=0.01-fc=32-norm=none-seed=43"]


def test_the_dropout_profile_adds_the_originals_planned_axis() -> None:
    grid = load_grid("dropout")
    assert grid.dropout == (0.0, 0.2) and len(grid.configs()) == 36 * 10
    ids = {c.cell_id for c in grid.configs()}
    assert "lr=0.01-fc=32-norm=none" in ids and "lr=0.01-fc=32-norm=none-dropout=0.2" in ids
    assert {c.dropout for c in grid.configs()} == {0.0, 0.2}


def test_dropout_is_fixed_in_train_or_an_axis_in_grid(tmp_path: Path) -> None:
    path = tmp_path / "fixed.toml"
    path.write_text('extends = "quick"\n[train]\ndropout = 0.5\n')
    assert {c.dropout for c in load_grid(str(path)).configs()} == {0.5}
    path.write_text('extends = "quick"\n[train]\ndropout = 0.5\n[grid]\ndropout = [0.1, 0.3]\n')
    assert {c.dropout for c in load_grid(str(path)).configs()} == {0.1, 0.3}
    path.write_text('extends = "quick"\n[grid]\ndropout = [1.5]\n')
    with pytest.raises(GridError, match=r"dropout=1.5 is invalid: use a number in \[0, 1\)"):
        load_grid(str(path))


def test_replicates_are_paired_and_may_resample_the_split() -> None:
    grid = load_grid("quick").with_replicates(seeds=3, base_seed=7, resample_split=False)
    seeds = {(c.cell_id, c.seed, c.split_seed) for c in grid.configs()}
    assert {(s, sp) for _, s, sp in seeds} == {(7, 42), (8, 42), (9, 42)}
    resampled = grid.with_replicates(resample_split=True).configs()
    by_seed = {(c.norm, c.fc_units, c.seed): c.split_seed for c in resampled}
    assert by_seed[("none", 32, 8)] == by_seed[("batchnorm", 128, 8)] == 43  # shared split
    with pytest.raises(GridError, match=r"seeds=0 is invalid"):
        grid.with_replicates(seeds=0)


def test_toml_file_overrides_a_profile(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text('extends = "quick"\n[grid]\nfc_units = [8, 16]\n[train]\nepochs = 2\n'
                    '[data]\nclasses = ["cat", "dog"]\n')
    grid = load_grid(str(path))
    assert grid.fc_units == (8, 16) and grid.lr == (0.01, 0.001)
    assert {c.epochs for c in grid.configs()} == {2} and len(grid.configs()) == 8 * grid.seeds
    assert grid.data.classes == ("cat", "dog")


def test_toml_file_without_extends_overrides_full(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text("[train]\nepochs = 1\n")
    grid = load_grid(str(path))
    assert len(grid.configs()) == 180 and grid.configs()[0].epochs == 1


def test_toml_file_may_extend_a_sibling_file(tmp_path: Path) -> None:
    (tmp_path / "base.toml").write_text('extends = "quick"\n[train]\nepochs = 3\n')
    (tmp_path / "child.toml").write_text('extends = "base.toml"\n[train]\nseed = 1\n')
    config = load_grid(str(tmp_path / "child.toml")).configs()[0]
    assert (config.epochs, config.seed, config.fc_units) == (3, 1, 32)


@pytest.mark.parametrize("text, message", [
    ("[grid]\nlr = [-0.01]\n", r"lr=-0.01 is invalid: use a positive number"),
    ("[grid]\nlr = [0]\n", r"lr=0.0 is invalid"),
    ('[grid]\nnorm = ["weightnorm"]\n', r"norm='weightnorm' is invalid: use one of \['none', 'batchnorm', 'layernorm', 'groupnorm'\]"),
    ("[grid]\nfc_units = [0]\n", r"fc_units=0 is invalid: use an integer >= 1"),
    ("[grid]\nfc_units = [1.5]\n", r"grid.fc_units value 1.5 is not a int"),
    ("[grid]\nlr = []\n", r"grid.lr=\[\] must be a non-empty list"),
    ("[grid]\nlr = [0.01, 0.01]\n", r"lists a value twice"),
    ("[train]\nepochs = 2.5\n", r"train.epochs=2.5 must be an integer"),
    ("[train]\nlearning_rate = 1\n", r"unknown keys \['learning_rate'\] in \[train\]"),
    ("[grid]\nlr = 0.01 0.02\n", r"malformed TOML: .*\(at line 2, column"),
    ("surprise = 1\n", r"unknown keys \['surprise'\]"),
    ('extends = "nothing"\n', r"extends='nothing' is not a profile name \(dropout, full, norms, quick\)"),
    ('[data]\nclasses = ["cat"]\n', r"name at least two classes"),
    ("[replicates]\nseeds = 0\n", r"seeds=0 is invalid: use an integer >= 1"),
    ("[replicates]\nseeds = 2.5\n", r"replicates.seeds=2.5 must be an integer"),
    ('[replicates]\nresample_split = "yes"\n', r"must be true or false"),
])
def test_bad_toml_is_rejected_with_file_and_reason(tmp_path: Path, text: str,
                                                    message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(GridError, match=message) as info:
        load_grid(str(path))
    assert str(path) in str(info.value)


def test_unknown_profile_lists_the_known_ones() -> None:
    with pytest.raises(GridError, match=r"unknown grid 'fast': use a profile name \(dropout, full, norms, quick\)"):
        load_grid("fast")


def test_extends_cycle(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text('extends = "b.toml"\n')
    (tmp_path / "b.toml").write_text('extends = "a.toml"\n')
    with pytest.raises(GridError, match="cycle"):
        load_grid(str(tmp_path / "a.toml"))
