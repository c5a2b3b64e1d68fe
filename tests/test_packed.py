"""Packed training (``normcheck.packed``, ``normcheck.train_packed``) is P unpacked trainings:
one step to float tolerance, whole runs to the same histories, and final accuracies within an
equivalence margin over replicates. Each model keeps its own statistics and learning rate: a
pack that mixed them fails these tests (docs/packing.md says how that was tried)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import tiny_data

from normcheck.model import CompactCNN
from normcheck.norms import NORMS
from normcheck.optimizer import Adam, PackedAdam
from normcheck.packed import PackedCNN, model_view
from normcheck.packs import check_packable, pack_option, pack_size, packs
from normcheck.records import TrainConfig
from normcheck.stats import t_half_width
from normcheck.train import train
from normcheck.train_packed import per_model_loss, side_by_side, train_packed

# models 0 and 2 share a learning rate and weight decay (so PackedAdam updates them in one
# call, as it does a cell's replicates); model 1 has its own
LRS, DECAYS, SEEDS = (1e-2, 3e-3, 1e-2), (1e-4, 0.0, 1e-4), (11, 22, 33)
EQUIVALENCE_MARGIN = 0.02  # final test accuracy, packed minus alone (see docs/packing.md)
STEP = {"rtol": 1e-3, "atol": 1e-4}  # one step: the same sums in another order
# Biases that BatchNorm subtracts again: their gradient is zero but for rounding, and Adam's
# first step moves a parameter by lr times the sign of its gradient, so packed and alone would
# move them by +-lr at random (and BatchNorm's running mean with them). The test checks that
# their gradients are zero to tolerance in both, then sets them to that zero.
CANCELLED = {"features.0.bias", "features.4.bias", "classifier.1.bias"}


def _config(norm: str, lr: float = 3e-3, seed: int = 0, **kwargs) -> TrainConfig:
    fields = {"fc_units": 16, "epochs": 2, "batch_size": 16, "base_channels": 4, **kwargs}
    return TrainConfig(lr=lr, norm=norm, seed=seed, **fields)


def _tensors(model: torch.nn.Module) -> list[torch.Tensor]:
    return [*model.parameters(), *model.buffers()]


@pytest.mark.parametrize("norm", sorted(NORMS))
def test_one_packed_step_is_p_unpacked_steps(norm: str) -> None:
    """Outputs, gradients, normalisation statistics and Adam's state, model by model, after
    two steps (so that the second starts from each model's own moments)."""
    alone = []
    for seed in SEEDS:
        torch.manual_seed(seed)
        alone.append(CompactCNN(8, norm, base_channels=4))
    pack = PackedCNN(3, 8, norm, base_channels=4)
    for k, model in enumerate(alone):
        pack.load_model(k, model)
    shapes = [p.shape for p in alone[0].parameters()]
    packed_opt = PackedAdam(list(pack.parameters()), shapes, list(LRS), list(DECAYS))
    opts = [Adam(m.parameters(), lr, wd) for m, lr, wd in zip(alone, LRS, DECAYS, strict=True)]
    datas = [tiny_data(n_train=32, seed=s) for s in SEEDS]
    for step in range(2):
        x = torch.stack([d.train_x[16 * step:16 * (step + 1)] for d in datas])
        y = torch.stack([d.train_y[16 * step:16 * (step + 1)] for d in datas])
        logits = pack(side_by_side(x))
        packed_opt.zero_grad()
        per_model_loss(logits, y)[0].sum().backward()
        for k, (model, opt) in enumerate(zip(alone, opts, strict=True)):
            own = model(x[k])
            torch.testing.assert_close(logits.view(16, 3, 3)[:, k], own, **STEP)
            opt.zero_grad()
            F.cross_entropy(own, y[k]).backward()
            for packed, (name, mine) in zip(pack.parameters(), model.named_parameters(),
                                            strict=True):
                ours = model_view(packed.grad, 3, mine.shape, k)
                torch.testing.assert_close(ours, mine.grad, **STEP)
                if norm == "batchnorm" and name in CANCELLED:  # the zero they are
                    ours.zero_()
                    mine.grad.zero_()
            opt.step()
        packed_opt.step()
        for k, model in enumerate(alone):
            for packed, mine in zip([*pack.parameters(), *pack.buffers()],
                                    [*model.parameters(), *model.buffers()], strict=True):
                torch.testing.assert_close(packed.detach() if mine.dim() == 0  # BN's counter
                                           else model_view(packed.detach(), 3, mine.shape, k),
                                           mine.detach(), **STEP)
    for k, opt in enumerate(opts):
        ours = packed_opt.per_model[k]
        for a, b in zip([*ours.exp_avgs, *ours.exp_avg_sqs, *ours.steps],
                        [*opt.exp_avgs, *opt.exp_avg_sqs, *opt.steps], strict=True):
            torch.testing.assert_close(a, b, **STEP)


def _close(name: str, a: float, b: float) -> bool:
    """Whole runs: one step's rounding, grown over a few epochs, stays within 1%, and an
    accuracy within one image (rounding can move a prediction that sits on a boundary)."""
    if name.endswith("_acc"):
        return abs(a - b) <= 1 / 48 + 1e-9
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-2, abs=1e-3)


def _same_run(packed, alone) -> None:
    assert packed.config == alone.config and packed.diverged == alone.diverged
    assert len(packed.history) == len(alone.history)
    for p, a in zip(packed.history, alone.history, strict=True):
        for name, value in a.metrics().items():
            assert _close(name, p.metrics()[name], value), (packed.config.case_id, p.epoch,
                                                          name)
    assert abs(packed.test_acc - alone.test_acc) <= 1 / 48 + 1e-9  # one image, at most
    assert _close("max_grad_norm", packed.max_grad_norm, alone.max_grad_norm)


@pytest.mark.parametrize("norm", sorted(NORMS))
def test_packed_training_is_each_run_trained_alone(norm: str) -> None:
    """Whole runs, with dropout (each model's own stream) and the probes, on three splits."""
    configs = [_config(norm, lr, seed, dropout=0.2) for lr, seed in zip(LRS, SEEDS, strict=True)]
    datas = [tiny_data(seed=s) for s in SEEDS]
    seen: list[tuple[int, int]] = []
    packed = train_packed(configs, datas, on_epoch=lambda k, m: seen.append((k, m.epoch)))
    assert sorted(seen) == [(k, e) for k in range(3) for e in (1, 2)]
    for (result, model), config, data in zip(packed, configs, datas, strict=True):
        alone, alone_model = train(config, data)
        _same_run(result, alone)
        assert isinstance(model, CompactCNN)
        model.eval()
        alone_model.eval()
        torch.testing.assert_close(model(data.test_x), alone_model(data.test_x), rtol=1e-2,
                                   atol=1e-2)


def test_a_diverged_model_stops_and_the_others_go_on() -> None:
    configs = [_config("batchnorm", 3e-3, 1, epochs=4),
               _config("batchnorm", 1e12, 2, epochs=4, weight_decay=0.0),
               _config("batchnorm", 1e-3, 3, epochs=4)]
    datas = [tiny_data(seed=s) for s in (1, 2, 3)]
    packed = train_packed(configs, datas)
    assert [r.diverged for r, _ in packed] == [False, True, False]
    diverged, alone = packed[1][0], train(configs[1], datas[1])[0]
    # at lr 1e12 the numbers before the loss stops being finite are rounding, amplified:
    # where it stops must agree, not what it computed on the way
    assert alone.diverged and len(diverged.history) == len(alone.history) < 4
    assert not math.isfinite(diverged.history[-1].train_loss + diverged.history[-1].val_loss)
    for i in (0, 2):
        _same_run(packed[i][0], train(configs[i], datas[i])[0])


def test_packed_and_unpacked_final_accuracies_are_equivalent() -> None:
    """A paired equivalence test over 8 replicates (each its own seed and split) of two
    cells: the 90% t interval of the mean paired difference lies within the margin (two
    one-sided 5% tests). At lr=1e-2 rounding can send a run elsewhere by the third epoch,
    so the differences are not all zero; they must be small and centred."""
    differences = []
    for lr in (1e-2, 1e-3):
        configs = [_config("batchnorm", lr, r, epochs=3) for r in range(8)]
        datas = [tiny_data(n_train=192, n_val=96, seed=100 + r) for r in range(8)]
        packed = train_packed(configs, datas)
        differences += [result.test_acc - train(config, data)[0].test_acc
                        for (result, _), config, data in zip(packed, configs, datas,
                                                             strict=True)]
    mean = float(np.mean(differences))
    half = t_half_width(np.std(differences, ddof=1) / math.sqrt(len(differences)),
                        len(differences) - 1, 0.90)
    assert -EQUIVALENCE_MARGIN < mean - half and mean + half < EQUIVALENCE_MARGIN, differences


def test_runs_of_different_architectures_cannot_share_a_pack() -> None:
    with pytest.raises(ValueError, match=r"different fc_units, norm cannot share a pack"):
        check_packable([_config("none"), _config("batchnorm", fc_units=32)])
    check_packable([_config("none", 1e-2, 1), _config("none", 1e-3, 2, weight_decay=0.0)])


def test_packs_group_by_architecture_in_order_and_size() -> None:
    configs = [_config(norm, lr, seed) for norm in ("none", "batchnorm")
               for lr in (1e-2, 1e-3) for seed in (1, 2, 3)]
    grouped = packs(configs, 4)
    assert [len(p) for p in grouped] == [4, 2, 4, 2]
    assert all(len({c.norm for c in p}) == 1 for p in grouped)
    assert [c for p in grouped for c in p] == configs
    assert [len(p) for p in packs(configs, 1)] == [1] * 12


def test_the_pack_option() -> None:
    assert [pack_option(v) for v in ("auto", "off", "1", "8")] == ["auto", "off", 1, 8]
    for bad in ("0", "-2", "many"):
        with pytest.raises(Exception, match="neither auto, off nor an integer"):
            pack_option(bad)
    assert pack_size("off", "cuda") == 1 and pack_size(5, "cpu") == 5
    assert pack_size("auto", "cuda") > 1 and pack_size("auto", "cpu") == 1


def test_a_pack_takes_along_only_what_the_plan_needs_with_it() -> None:
    """A fixed plan needs the whole grid with any run; rounds (--seeds auto) only the run's
    own round, since a later one may never be asked for."""
    from normcheck.grid import load_grid
    from normcheck.plans import FixedPlan, RoundsPlan
    from normcheck.sequential import Design

    design = Design(first=3, round=2, max_seeds=7)
    grid = load_grid("quick").with_replicates(design.max_seeds, design.base_seed)
    rounds = RoundsPlan(grid, None, design, None, None, None, "", "")
    replicates = lambda r: sorted({grid.replicate(c) for c in rounds.companions(  # noqa: E731
        next(c for c in grid.configs() if grid.replicate(c) == r))})
    assert [replicates(r) for r in range(7)] == [[0, 1, 2]] * 3 + [[3, 4]] * 2 + [[5, 6]] * 2
    fixed = FixedPlan(grid, None, None, None)
    assert fixed.companions(grid.configs()[0]) == grid.configs()
