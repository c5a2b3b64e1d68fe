"""The covariate-shift probe (normcheck.shift) on cases with a known answer: nothing shifts
when the earlier layers do not move, and a two-layer linear network's shift computed by hand.
Broken on purpose (the gradient taken before the earlier layers' update, not after), the
hand-computed case fails."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from normcheck.model import CompactCNN
from normcheck.shift import covariate_shift, weight_layers


def grads_and_loss(model: nn.Module, loss_fn):
    params = list(model.parameters())
    return [g.detach() for g in torch.autograd.grad(loss_fn(), params)], params


def test_nothing_shifts_when_the_earlier_layers_are_frozen() -> None:
    """Only the last layer moves: every layer's gradient and input stay exactly the same."""
    torch.manual_seed(0)
    model = CompactCNN(8, "batchnorm", base_channels=2)
    x, y = torch.rand(24, 3, 32, 32), torch.randint(0, 3, (24,))

    def loss():
        return nn.functional.cross_entropy(model(x), y)

    grads, params = grads_and_loss(model, loss)
    last = set(map(id, weight_layers(model)[-1].parameters()))
    step = [-0.01 * g if id(p) in last else torch.zeros_like(g)
            for p, g in zip(params, grads, strict=True)]
    shift = covariate_shift(model, loss, grads, step)
    assert shift == {"ics_l2": 0.0, "ics_cosine": pytest.approx(1.0, abs=1e-12),
                     "input_mean_shift": 0.0, "input_var_shift": 0.0}


def test_a_two_layer_linear_network_by_hand() -> None:
    """f(x) = W2 W1 x, loss 0.5 sum (f(x) - y)^2: layer 2's gradient is r (W1 x)^T summed over
    the batch, r = W2 W1 x - y; after W1 takes its step D1 it is r' ((W1 + D1) x)^T."""
    rng = np.random.default_rng(3)
    w1, w2 = rng.normal(size=(3, 2)), rng.normal(size=(1, 3))
    x, y = rng.normal(size=(5, 2)), rng.normal(size=(5, 1))
    d1, d2 = rng.normal(size=(3, 2)) * 0.1, rng.normal(size=(1, 3)) * 0.1

    def layer2_grad(w1_: np.ndarray) -> np.ndarray:
        h = x @ w1_.T
        return ((h @ w2.T - y).T @ h).ravel()

    g, g_after = layer2_grad(w1), layer2_grad(w1 + d1)
    h, h_after = x @ w1.T, x @ (w1 + d1).T
    expected_mean = np.mean(np.abs(h_after.mean(0) - h.mean(0)) / h.std(0))
    expected_var = np.mean(np.abs(np.log(h_after.var(0) / h.var(0))))

    model = nn.Sequential(nn.Linear(2, 3, bias=False), nn.Linear(3, 1, bias=False)).double()
    with torch.no_grad():
        model[0].weight.copy_(torch.from_numpy(w1))
        model[1].weight.copy_(torch.from_numpy(w2))
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)

    def loss():
        return 0.5 * ((model(tx) - ty) ** 2).sum()

    grads, _ = grads_and_loss(model, loss)
    np.testing.assert_allclose(grads[1].numpy().ravel(), g)
    shift = covariate_shift(model, loss, grads, [torch.from_numpy(d1), torch.from_numpy(d2)])
    assert shift["ics_l2"] == pytest.approx(np.linalg.norm(g - g_after), rel=1e-9)
    assert shift["ics_l2"] > 0.01
    cosine = g @ g_after / (np.linalg.norm(g) * np.linalg.norm(g_after))
    assert shift["ics_cosine"] == pytest.approx(cosine, rel=1e-9)
    assert shift["input_mean_shift"] == pytest.approx(expected_mean, rel=1e-9)
    assert shift["input_var_shift"] == pytest.approx(expected_var, rel=1e-9)
    # restored: the weights are where they started
    assert np.array_equal(model[0].weight.detach().numpy(), w1)
    assert not model[0]._forward_pre_hooks and not model[1]._forward_pre_hooks


def test_a_network_with_one_weight_layer_has_no_shift() -> None:
    model = nn.Sequential(nn.Linear(2, 1))
    x = torch.rand(4, 2)

    def loss():
        return model(x).sum()

    grads, _ = grads_and_loss(model, loss)
    assert all(math.isnan(v) for v in covariate_shift(model, loss, grads, grads).values())
