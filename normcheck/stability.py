"""A cheap probe of the loss landscape, measured during training.

The probe follows Santurkar et al. 2018 ("How Does Batch Normalization Help Optimization?"):
from the current weights, move along the step the optimizer would take and measure how much
the loss varies (loss range), how much the gradient changes (gradient predictiveness) and the
ratio of the gradient's change to the distance moved (an effective beta-smoothness). With Adam
the step is Adam's own update, whose length has little to do with lr x the gradient's norm.
"""

import copy
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from normcheck.probe import PROBE_STEPS
from normcheck.shift import covariate_shift

Update = Callable[[list[torch.Tensor]], list[torch.Tensor]]


def probe_batch(labels: torch.Tensor, size: int, seed: int) -> torch.Tensor:
    """Indices of a class-balanced batch of ``size`` images, drawn with ``seed``.

    The training split is stored class by class, so its first images are all of one class;
    a batch of them would give BatchNorm single-class statistics.
    """
    labels = labels.cpu()
    generator = torch.Generator().manual_seed(seed)
    classes = labels.unique()
    picks = []
    for k, c in enumerate(classes):
        pool = (labels == c).nonzero().flatten()
        take = size // len(classes) + (k < size % len(classes))
        picks.append(pool[torch.randperm(len(pool), generator=generator)[:take]])
    return torch.cat(picks).sort().values


def _loss_and_grads(loss_fn: Callable[[], torch.Tensor], params: list[torch.Tensor]
                    ) -> tuple[float, list[torch.Tensor]]:
    loss = loss_fn()
    grads = torch.autograd.grad(loss, params)
    return loss.item(), [g.detach() for g in grads]


def _norm(tensors: list[torch.Tensor]) -> float:
    return math.sqrt(sum(float(t.double().square().sum()) for t in tensors))


def probe_along(loss_fn: Callable[[], torch.Tensor], params: list[torch.Tensor], update: Update,
                multiples: tuple[float, ...] = PROBE_STEPS,
                also: Callable[[list[torch.Tensor], list[torch.Tensor]], dict[str, float]]
                | None = None) -> dict[str, float]:
    """Loss range, gradient change and beta-smoothness along ``update(gradient)`` from the
    parameters' current values; the parameters are restored afterwards.

    ``loss_fn`` computes the loss from ``params``; ``update`` maps their gradients to the
    change an optimizer step would make. beta-smoothness is the largest ratio of the gradient's
    change to the distance moved, over the ``multiples`` of that change. ``also(gradients,
    update)`` measures more from the same start (its results join the probe's).
    """
    start = [p.detach().clone() for p in params]
    loss0, grad0 = _loss_and_grads(loss_fn, params)
    direction = update(grad0)
    length = _norm(direction)
    losses, changes, betas = [loss0], [], []
    extra = also(grad0, direction) if also is not None else {}
    try:
        for k in multiples:
            with torch.no_grad():
                for p, p0, d in zip(params, start, direction, strict=True):
                    p.copy_(p0 + k * d)
            loss, grad = _loss_and_grads(loss_fn, params)
            change = _norm([g - g0 for g, g0 in zip(grad, grad0, strict=True)])
            losses.append(loss)
            changes.append(change)
            betas.append(change / max(k * length, 1e-12))
    finally:
        with torch.no_grad():
            for p, p0 in zip(params, start, strict=True):
                p.copy_(p0)
    return {"loss_range": max(losses) - min(losses), "grad_change": max(changes),
            "beta_smoothness": max(betas), **extra}


def landscape_probe(model: nn.Module, x: torch.Tensor, y: torch.Tensor, update: Update,
                    shift: bool = True) -> dict[str, float]:
    """The probe at ``model``'s weights on the batch ``(x, y)``, along ``update``: the
    landscape's smoothness and (``shift``) the internal covariate shift (``normcheck.shift``).

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
    params = list(probe.parameters())

    def loss() -> torch.Tensor:
        return F.cross_entropy(probe(x), y)

    return probe_along(loss, params, update, also=(
        lambda grads, step: covariate_shift(probe, loss, grads, step)) if shift else None)
