"""Internal covariate shift, measured: does normalization reduce it, as the original study says?

Two senses, both along the optimizer's own update from the current weights, on the fixed
probe batch:

- Santurkar et al. 2018 (section 2.2, the gradient-based definition): for each layer with
  weights after the first, its gradient G before and G' after every earlier layer has taken
  its update (this layer and the later ones unchanged). Reported as the L2 distance
  ||G - G'|| and the cosine of G and G' (1: the earlier layers' step did not change what this
  layer is asked to do), each averaged over the layers.
- Ioffe and Szegedy 2015 (the distributional sense): how the mean and the variance of each
  such layer's input move when the earlier layers take that same step, per input feature
  (channel, for a convolution): the mean's move in units of the feature's standard deviation,
  and the variance's as an absolute log ratio, averaged over features and layers.

Both come out of the same forward passes: one per layer after the first.
"""

import math
from collections.abc import Callable

import torch
from torch import nn

from normcheck.probe import SHIFT_METRICS

EPS = 1e-12


def weight_layers(model: nn.Module) -> list[nn.Module]:
    """The convolutions and linear layers, in the order their parameters were registered
    (the forward order for a sequential network such as the study's)."""
    return [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]


def _moments(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-feature mean and variance of a layer's input (features: dim 1)."""
    dims = [d for d in range(x.dim()) if d != 1]
    x = x.detach().double()
    return x.mean(dims), x.var(dims, unbiased=False)


def covariate_shift(model: nn.Module, loss_fn: Callable[[], torch.Tensor],
                    grads: list[torch.Tensor], direction: list[torch.Tensor]
                    ) -> dict[str, float]:
    """Both senses of the shift at ``model``'s current weights.

    ``loss_fn`` computes the loss from the model's parameters, ``grads`` are its gradients at
    the current weights (in ``model.parameters()`` order) and ``direction`` the change one
    optimizer step would make to each parameter. The parameters are restored afterwards.
    """
    params = list(model.parameters())
    index = {id(p): i for i, p in enumerate(params)}
    layers = weight_layers(model)[1:]  # the first layer's input is the data: nothing shifts it
    if not layers:
        return dict.fromkeys(SHIFT_METRICS, math.nan)
    seen: dict[nn.Module, tuple[torch.Tensor, torch.Tensor]] = {}
    hooks = [layer.register_forward_pre_hook(
        lambda m, inputs: seen.__setitem__(m, _moments(inputs[0]))) for layer in layers]
    start = [p.detach().clone() for p in params]
    l2, cosine, mean_shift, var_shift = [], [], [], []
    try:
        with torch.no_grad():
            loss_fn()
        before = dict(seen)
        for layer in layers:
            own = [index[id(p)] for p in layer.parameters()]
            earlier = range(min(own))
            with torch.no_grad():
                for i in earlier:
                    params[i].add_(direction[i])
            after = torch.autograd.grad(loss_fn(), [params[i] for i in own])
            with torch.no_grad():
                for i in earlier:
                    params[i].copy_(start[i])
            g = torch.cat([grads[i].flatten() for i in own]).double()
            g2 = torch.cat([a.detach().flatten() for a in after]).double()
            l2.append(float((g - g2).norm()))
            cosine.append(float(g @ g2 / max(float(g.norm() * g2.norm()), EPS)))
            (mean0, var0), (mean1, var1) = before[layer], seen[layer]
            mean_shift.append(float(((mean1 - mean0).abs() / (var0 + EPS).sqrt()).mean()))
            var_shift.append(float(((var1 + EPS) / (var0 + EPS)).log().abs().mean()))
    finally:
        for hook in hooks:
            hook.remove()
        with torch.no_grad():
            for p, p0 in zip(params, start, strict=True):
                p.copy_(p0)
    return {"ics_l2": _mean(l2), "ics_cosine": _mean(cosine),
            "input_mean_shift": _mean(mean_shift), "input_var_shift": _mean(var_shift)}


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)
