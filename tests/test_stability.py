"""The landscape probe (H5's measurement): exact on a quadratic of known curvature, along
Adam's own update, on a class-balanced batch, and harmless to the model it probes."""

import math

import pytest
import torch
import torch.nn.functional as F

from normcheck.model import CompactCNN
from normcheck.optimizer import Adam
from normcheck.probe import PROBE_STEPS, SHIFT_METRICS
from normcheck.stability import landscape_probe, probe_along, probe_batch


def quadratic(curvatures: list[float]) -> tuple[torch.nn.Parameter, callable]:
    """f(w) = 1/2 sum c_i w_i^2: the gradient is c * w, so along any direction d the gradient
    changes by |c * d| per unit moved."""
    w = torch.nn.Parameter(torch.zeros(len(curvatures), dtype=torch.float64))
    c = torch.tensor(curvatures, dtype=torch.float64)
    return w, lambda: 0.5 * (c * w * w).sum()


@pytest.mark.parametrize("curvature", [0.5, 3.0, 40.0])
def test_beta_is_the_curvature_of_a_quadratic(curvature: float) -> None:
    w, loss = quadratic([curvature, 100.0])
    with torch.no_grad():
        w.copy_(torch.tensor([1.0, 0.0]))  # the gradient points along the first axis only
    lr = 0.01
    probe = probe_along(loss, [w], lambda grads: [-lr * g for g in grads])
    assert probe["beta_smoothness"] == pytest.approx(curvature, rel=1e-9)
    step = lr * curvature  # the update's length, from w = 1 along the first axis
    losses = [0.5 * curvature * (1 - k * step) ** 2 for k in (0.0, *PROBE_STEPS)]
    assert probe["loss_range"] == pytest.approx(max(losses) - min(losses), rel=1e-9)
    assert probe["grad_change"] == pytest.approx(curvature * max(PROBE_STEPS) * step, rel=1e-9)
    assert w.detach().tolist() == [1.0, 0.0]  # restored


def test_beta_is_measured_along_the_update_not_the_gradient() -> None:
    """An update that moves only along the flat axis sees that axis's curvature, whatever the
    gradient's direction."""
    w, loss = quadratic([2.0, 50.0])
    with torch.no_grad():
        w.copy_(torch.tensor([1.0, 1.0]))
    probe = probe_along(loss, [w], lambda grads: [torch.tensor([-0.1, 0.0], dtype=torch.float64)])
    assert probe["beta_smoothness"] == pytest.approx(2.0, rel=1e-9)


def test_adam_update_is_the_step_adam_takes() -> None:
    torch.manual_seed(0)
    model = CompactCNN(8, "batchnorm", base_channels=2)
    optimizer = Adam(model.parameters(), lr=3e-3, weight_decay=1e-4)
    x, y = torch.rand(16, 3, 32, 32), torch.randint(0, 3, (16,))
    for _ in range(3):  # some optimizer state first
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    optimizer.zero_grad()
    F.cross_entropy(model(x), y).backward()
    update = optimizer.update([p.grad for p in model.parameters()])
    before = [p.detach().clone() for p in model.parameters()]
    optimizer.step()
    for p, p0, u in zip(model.parameters(), before, update, strict=True):
        torch.testing.assert_close(p.detach() - p0, u, rtol=1e-4, atol=1e-8)  # float32 steps


def test_the_probe_batch_is_class_balanced_and_seeded() -> None:
    labels = torch.arange(3).repeat_interleave(800)  # stored class by class, as splits are
    batch = probe_batch(labels, 128, seed=42)
    assert len(batch) == len(set(batch.tolist())) == 128
    assert torch.bincount(labels[batch]).tolist() == [43, 43, 42]
    assert torch.equal(batch, probe_batch(labels, 128, seed=42))
    assert not torch.equal(batch, probe_batch(labels, 128, seed=43))


def test_landscape_probe_leaves_the_model_and_optimizer_untouched() -> None:
    torch.manual_seed(0)
    model = CompactCNN(8, "batchnorm", base_channels=2)
    model.train()
    optimizer = Adam(model.parameters(), lr=0.01, weight_decay=1e-4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = [t.clone() for t in optimizer.exp_avgs + optimizer.exp_avg_sqs + optimizer.steps]
    x, y = torch.rand(32, 3, 32, 32), torch.randint(0, 3, (32,))
    probe = landscape_probe(model, x, y, optimizer.update)
    assert set(probe) == {"loss_range", "grad_change", "beta_smoothness", *SHIFT_METRICS}
    assert all(v >= 0 and math.isfinite(v) for v in probe.values())
    assert 0 < probe["ics_cosine"] <= 1
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN running stats included
    assert all(torch.equal(a, b) for a, b in zip(
        state, optimizer.exp_avgs + optimizer.exp_avg_sqs + optimizer.steps, strict=True))
