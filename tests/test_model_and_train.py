"""The CNN's shapes, and the training loop's determinism, metrics and divergence handling."""

import copy
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from helpers import tiny_data

from normcheck.model import CompactCNN
from normcheck.norms import NORMS
from normcheck.optimizer import Adam
from normcheck.records import ConfigError, RunResult, TrainConfig
from normcheck.train import train


@pytest.mark.parametrize("norm", sorted(NORMS))
@pytest.mark.parametrize("fc_units", [1, 32, 128])
def test_output_shape(norm: str, fc_units: int) -> None:
    model = CompactCNN(fc_units, norm, num_classes=3)
    model.eval()
    assert model(torch.zeros(5, 3, 32, 32)).shape == (5, 3)


def test_batchnorm_model_has_norm_layers_and_none_has_not() -> None:
    kinds = lambda m: {type(layer).__name__ for layer in m.modules()}  # noqa: E731
    assert {"BatchNorm2d", "BatchNorm1d"} <= kinds(CompactCNN(16, "batchnorm"))
    assert not any("Norm" in k for k in kinds(CompactCNN(16, "none")))


def test_base_channels_and_dropout_are_parameters() -> None:
    model = CompactCNN(8, "none", base_channels=4, dropout=0.25)
    assert model.features[0].out_channels == 4 and model.classifier[1].in_features == 8 * 8 * 8
    assert model.classifier[4].p == 0.25


@pytest.mark.parametrize("norm", sorted(NORMS))
def test_pooling_before_relu_is_the_original_relu_then_pool(norm: str) -> None:
    """The blocks pool before the ReLU for speed; outputs and gradients must not change."""
    torch.manual_seed(0)
    model = CompactCNN(16, norm)
    original = copy.deepcopy(model)
    for i in (2, 6):  # conv-[norm]-ReLU-pool, as the study describes it
        original.features[i], original.features[i + 1] = torch.nn.ReLU(), torch.nn.MaxPool2d(2)
    x = torch.randn(8, 3, 32, 32)
    outputs = []
    for m in (model, original):
        torch.manual_seed(1)  # the same dropout mask
        outputs.append(m(x))
        outputs[-1].square().sum().backward()
    assert torch.equal(*outputs)
    for p, q in zip(model.parameters(), original.parameters(), strict=True):
        assert torch.equal(p.grad, q.grad)


@pytest.mark.parametrize("norm", sorted(NORMS))
def test_adam_is_torch_optim_fused_adam(norm: str) -> None:
    """normcheck's Adam calls torch's fused kernel directly: the updates must be identical."""
    torch.manual_seed(0)
    ours, theirs = CompactCNN(8, norm, dropout=0.0), CompactCNN(8, norm, dropout=0.0)
    theirs.load_state_dict(ours.state_dict())
    optimizers = (Adam(ours.parameters(), lr=3e-3, weight_decay=1e-4),
                  torch.optim.Adam(theirs.parameters(), lr=3e-3, weight_decay=1e-4, fused=True))
    data = tiny_data()
    for i in range(0, 96, 16):
        for model, optimizer in zip((ours, theirs), optimizers, strict=True):
            optimizer.zero_grad()
            F.cross_entropy(model(data.train_x[i:i + 16]), data.train_y[i:i + 16]).backward()
            optimizer.step()
    for p, q in zip(ours.parameters(), theirs.parameters(), strict=True):
        assert torch.equal(p, q)


def test_training_does_not_import_the_compiler_stack() -> None:
    """torch.optim's first optimizer imports torch._dynamo (seconds, 140 MiB); train must not."""
    code = ("import sys; sys.path.insert(0, 'tests'); from helpers import tiny_data; "
            "from normcheck.records import TrainConfig; from normcheck.train import train; "
            "train(TrainConfig(lr=1e-3, fc_units=8, epochs=1, batch_size=16, base_channels=4), "
            "tiny_data()); print(sorted(m for m in sys.modules if m.startswith('torch._dynamo')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).parents[1], check=True)
    assert done.stdout.strip() == "[]"


def test_unknown_norm_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"norm='weightnorm' is invalid: use one of"):
        TrainConfig(lr=0.01, fc_units=8, norm="weightnorm")


@pytest.mark.parametrize("field, value", [("lr", 0), ("lr", -1e-3), ("fc_units", 0),
                                          ("epochs", 0), ("dropout", 1.0)])
def test_invalid_config_values(field: str, value: float) -> None:
    kwargs = {"lr": 0.01, "fc_units": 8, field: value}
    with pytest.raises(ConfigError, match=rf"{field}={value!r} is invalid"):
        TrainConfig(**kwargs)


@pytest.mark.parametrize("norm", ["none", "batchnorm"])
def test_same_seed_same_metrics(norm: str) -> None:
    data = tiny_data()
    config = TrainConfig(lr=3e-3, fc_units=16, norm=norm, epochs=2, batch_size=16,
                         base_channels=4)
    a, _ = train(config, data)
    b, _ = train(config, data)
    assert a.history == b.history and a.test_acc == b.test_acc
    c, _ = train(TrainConfig(**{**config.as_dict(), "seed": 7}), data)
    assert c.history != a.history


def test_metrics_are_recorded_per_epoch() -> None:
    data = tiny_data()
    epochs = []
    result, model = train(TrainConfig(lr=3e-3, fc_units=16, epochs=3, batch_size=16,
                                      base_channels=4), data, on_epoch=epochs.append)
    assert [m.epoch for m in result.history] == [1, 2, 3] and tuple(epochs) == result.history
    for m in result.history:
        assert 0 <= m.train_acc <= 1 and 0 <= m.val_acc <= 1 and m.train_loss > 0
    assert 0 <= result.test_acc <= 1 and result.max_grad_norm > 0 and not result.diverged
    assert result.n_val == 48 and result.num_classes == 3
    assert isinstance(model, CompactCNN)
    summary = result.summary()
    assert summary["best_val_acc"] == max(m.val_acc for m in result.history)
    assert summary["epochs_run"] == 3


def test_learns_a_learnable_task() -> None:
    result, _ = train(TrainConfig(lr=3e-3, fc_units=16, norm="batchnorm", epochs=4,
                                  batch_size=16, base_channels=4), tiny_data(n_train=192))
    assert result.best_val_acc > 0.6  # chance is 1/3


def test_huge_lr_diverges_and_is_recorded_not_raised() -> None:
    config = TrainConfig(lr=1e12, fc_units=16, epochs=5, batch_size=16, base_channels=4,
                         weight_decay=0.0)
    result, _ = train(config, tiny_data())
    assert result.diverged
    assert len(result.history) < config.epochs  # stopped early
    last = result.history[-1]
    assert not (math.isfinite(last.train_loss) and math.isfinite(last.val_loss))


def test_a_lone_last_sample_does_not_break_batchnorm() -> None:
    result, _ = train(TrainConfig(lr=1e-3, fc_units=8, norm="batchnorm", epochs=1,
                                  batch_size=19, base_channels=2), tiny_data(n_train=96))
    assert len(result.history) == 1  # 96 = 5 x 19 + 1


def test_result_round_trips_through_a_dict() -> None:
    result, _ = train(TrainConfig(lr=1e-3, fc_units=8, epochs=1, batch_size=32,
                                  base_channels=2), tiny_data())
    assert RunResult.from_dict(result.to_dict()) == result


def test_every_epoch_records_the_landscape_probe_and_every_other_the_shift() -> None:
    result, _ = train(TrainConfig(lr=3e-3, fc_units=8, epochs=4, batch_size=16,
                                  base_channels=2), tiny_data())
    assert all(math.isfinite(m.beta_smoothness) and m.grad_change >= 0 for m in result.history)
    measured = [m for m in result.history if m.epoch in (1, 3, 4)]  # 1, 3, ... and the last
    assert all(m.ics_l2 > 0 and -1 <= m.ics_cosine <= 1 and m.input_mean_shift > 0
               for m in measured)
    assert math.isnan(result.history[1].ics_cosine)
    assert math.isfinite(result.initial_train_loss)


def test_run_signals() -> None:
    from normcheck.records import EpochMetrics, run_signals

    def epochs(*accs, final_loss=0.5):
        return [EpochMetrics(i + 1, final_loss, a, 1.0, a) for i, a in enumerate(accs)]

    good = run_signals(epochs(0.5, 0.6, 0.7), 1.1, False, 3)
    assert good == {"collapsed": 0.0, "loss_up": 0.0, "volatility": pytest.approx(0.1),
                    "unstable": 0.0}
    collapsed = run_signals(epochs(0.5, 0.36), 1.1, False, 3)
    assert collapsed["collapsed"] == 1.0 and collapsed["unstable"] == 1.0
    assert run_signals(epochs(0.5, 0.6, final_loss=1.2), 1.1, False, 3)["loss_up"] == 1.0
    assert run_signals(epochs(0.5, 0.6, final_loss=math.nan), 1.1, True, 3)["unstable"] == 1.0
