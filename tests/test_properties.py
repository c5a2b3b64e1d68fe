"""Properties over generated input: the configuration hash, the CSV files, the grid parser."""

import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from normcheck.grid import AXES, DATA_KEYS, FIXED, REPLICATE_KEYS, TOP_KEYS, GridError, load_grid
from normcheck.norms import NORMS
from normcheck.records import PROTOCOLS, EpochMetrics, RunResult, TrainConfig, config_hash
from normcheck.report import write_tables
from normcheck.tables import results_table, summary_table

finite = st.floats(min_value=1e-6, max_value=10.0, allow_nan=False)
configs = st.builds(
    TrainConfig, lr=finite, fc_units=st.integers(1, 4096), norm=st.sampled_from(
        sorted(NORMS)), epochs=st.integers(1, 100), batch_size=st.integers(1, 4096),
    weight_decay=st.floats(0, 1), dropout=st.floats(0, 0.99), base_channels=st.integers(1, 64),
    seed=st.integers(0, 2**31), split_seed=st.integers(0, 2**31))

HASHES = """
import json, sys
from normcheck.records import TrainConfig, config_hash
from normcheck.records import PROTOCOLS
for line in sys.stdin:
    print(config_hash(TrainConfig(**json.loads(line)), "fingerprint", "1.0"))
"""


@settings(max_examples=3, deadline=None)
@given(st.lists(configs, min_size=1, max_size=40))
def test_config_hash_is_the_same_in_another_process(batch: list[TrainConfig]) -> None:
    env = {**os.environ, "PYTHONHASHSEED": "12345"}  # another str hash seed than this process
    lines = "".join(json.dumps(c.as_dict()) + "\n" for c in batch)
    out = subprocess.run([sys.executable, "-c", HASHES], input=lines, capture_output=True,
                         text=True, check=True, env=env).stdout.split()
    assert out == [config_hash(c, "fingerprint", "1.0") for c in batch]


def other_value(value: object) -> object:
    if isinstance(value, str):
        return next(n for n in sorted(NORMS) if n != value)
    if isinstance(value, float):
        return value / 2 if value / 2 != value else value + 0.25
    return value + 1


@given(configs, st.sampled_from([f.name for f in dataclasses.fields(TrainConfig)]))
def test_config_hash_changes_with_every_parameter(config: TrainConfig, name: str) -> None:
    value = getattr(config, name)
    changed = dataclasses.replace(config, **{name: other_value(value)}) \
        if name != "dropout" or value < 0.9 else dataclasses.replace(config, dropout=value / 2)
    assert config_hash(changed, "fp", "1") != config_hash(config, "fp", "1")
    assert config_hash(config, "fp", "1") != config_hash(config, "other data", "1")
    assert config_hash(config, "fp", "1") != config_hash(config, "fp", "2")


metric = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)
epochs = st.builds(EpochMetrics, epoch=st.integers(1, 50), train_loss=metric, train_acc=metric,
                   val_loss=metric, val_acc=metric, loss_range=metric | st.just(math.nan),
                   grad_change=metric, beta_smoothness=metric)
results = st.builds(
    RunResult, config=configs, history=st.lists(epochs, min_size=1, max_size=5), test_acc=metric,
    initial_train_loss=metric, diverged=st.booleans(), max_grad_norm=metric,
    train_seconds=metric, device=st.sampled_from(["cpu", "cuda:0"]), n_val=st.integers(1, 10**4),
    num_classes=st.integers(2, 10), run_id=st.text("0123456789abcdef", min_size=32, max_size=32))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(results, min_size=1, max_size=8))
def test_metrics_and_summary_csv_round_trip_through_pandas(tmp_path: Path,
                                                           batch: list[RunResult]) -> None:
    table = results_table(batch)
    summary = summary_table(table)
    metrics_csv, summary_csv = write_tables(table, summary, tmp_path)
    read = pd.read_csv(metrics_csv, dtype={"mlflow_run_id": str})
    pd.testing.assert_frame_equal(read, table, check_dtype=False)
    pd.testing.assert_frame_equal(pd.read_csv(summary_csv), summary, check_dtype=False)


toml_scalar = (st.integers(-10**6, 10**6) | st.floats(allow_nan=True) | st.booleans() |
               st.text(max_size=12))
toml_value = st.recursive(toml_scalar, lambda inner: st.lists(inner, max_size=4) |
                          st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)
known = sorted(AXES.keys() | FIXED.keys() | DATA_KEYS | REPLICATE_KEYS.keys())
plausible = st.sampled_from([0.01, 0.001, 0, -1, 8, 1.5, "none", "batchnorm", "seed", "quick",
                             "full", "x.toml", True, ["cat", "dog"], []])
# mostly the keys a grid file has, with values of every kind, so parsing gets past the surface
table = st.dictionaries(st.sampled_from(known), plausible | st.lists(plausible, max_size=4) |
                        toml_value, max_size=5) | st.dictionaries(st.text(max_size=8),
                                                                  toml_value, max_size=3)
document = st.dictionaries(st.sampled_from(sorted(TOP_KEYS)), table | plausible, max_size=6) | \
    st.dictionaries(st.text(max_size=6), table | toml_value, max_size=4)


def only_grid_errors(path: Path) -> None:
    """A grid file loads into valid configurations, or is rejected with a message naming it."""
    try:
        grid = load_grid(str(path))
    except GridError as exc:
        assert str(path) in str(exc) or "profile" in str(exc), exc
        return
    assert grid.data.protocol in PROTOCOLS and isinstance(grid.data.split_seed, int)
    for config in grid.configs():
        for f in dataclasses.fields(config):
            assert type(getattr(config, f.name)) is f.type, (f.name, getattr(config, f.name))


@settings(max_examples=500, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document)
def test_grid_files_are_loaded_or_rejected_never_crash(tmp_path: Path, doc: dict) -> None:
    path = tmp_path / "grid.toml"
    path.write_text(tomli_w.dumps(doc))
    only_grid_errors(path)


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=80))
def test_arbitrary_text_is_rejected_with_a_message(tmp_path: Path, text: str) -> None:
    path = tmp_path / "grid.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    only_grid_errors(path)
