"""Stability science: run-level instability signals, and a cheap probe of the loss landscape.

The probe follows Santurkar et al. 2018 ("How Does Batch Normalization Help Optimization?"):
from the current weights, step along the gradient of a fixed batch by a few step sizes and
measure how much the loss varies (loss range), how much the gradient changes (gradient
predictiveness) and the ratio of the two changes (an effective beta-smoothness).
"""

import copy
import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from normcheck.train import EpochMetrics

COLLAPSE_MARGIN = 0.05  # a run has collapsed if its final accuracy is this close to chance
PROBE_BATCH = 128  # images in the fixed probe batch
PROBE_STEPS = (0.5, 1.0, 2.0)  # step sizes, as multiples of the training learning rate


def _loss_and_grad(model: nn.Module, x: torch.Tensor, y: torch.Tensor
                   ) -> tuple[float, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    grad = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    return loss.item(), grad


def landscape_probe(model: nn.Module, x: torch.Tensor, y: torch.Tensor, lr: float
                    ) -> dict[str, float]:
    """Loss range, gradient change and beta-smoothness along the gradient at ``model``'s weights.

    Works on a copy in training mode (BatchNorm uses batch statistics, as in training) with
    dropout off and BatchNorm's running statistics frozen, so training is not disturbed.
    """
    probe = copy.deepcopy(model)
    probe.train()
    for module in probe.modules():
        if isinstance(module, nn.Dropout):
            module.eval()
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = 0.0
    params = [p for p in probe.parameters() if p.requires_grad]
    start = [p.detach().clone() for p in params]
    loss0, grad0 = _loss_and_grad(probe, x, y)
    losses, changes, betas = [loss0], [], []
    for multiple in PROBE_STEPS:
        step = multiple * lr
        with torch.no_grad():
            offset = 0
            for p, p0 in zip(params, start, strict=True):
                n = p.numel()
                p.copy_(p0 - step * grad0[offset:offset + n].view_as(p))
                offset += n
        loss, grad = _loss_and_grad(probe, x, y)
        change = (grad - grad0).norm().item()
        losses.append(loss)
        changes.append(change)
        betas.append(change / max(step * grad0.norm().item(), 1e-12))
    return {"loss_range": max(losses) - min(losses), "grad_change": max(changes),
            "beta_smoothness": max(betas)}


def run_signals(history: "list[EpochMetrics]", initial_train_loss: float, diverged: bool,
                num_classes: int) -> dict[str, float]:
    """Instability signals of one run: diverged, collapsed, loss going up, and volatility."""
    if not history:
        return {"collapsed": math.nan, "loss_up": math.nan, "volatility": math.nan,
                "unstable": float(diverged)}
    last = history[-1]
    collapsed = abs(last.val_acc - 1 / max(num_classes, 1)) <= COLLAPSE_MARGIN
    loss_up = not last.train_loss < initial_train_loss  # NaN counts as up
    accs = [m.val_acc for m in history]
    volatility = (sum(abs(b - a) for a, b in zip(accs, accs[1:], strict=False)) /
                  (len(accs) - 1)) if len(accs) > 1 else 0.0
    return {"collapsed": float(collapsed), "loss_up": float(loss_up), "volatility": volatility,
            "unstable": float(diverged or collapsed or loss_up)}
