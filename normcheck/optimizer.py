"""Adam, as the study trains with it: torch's fused Adam kernel, called without torch.optim.

``torch.optim.Adam`` computes exactly this (``fused=True``, L2 weight decay), but the first
optimizer a process builds imports torch's compiler stack (``torch._dynamo`` and sympy), which
every xdist worker would pay for in start-up time and memory before its first training step
and never use (measured in ``benchmarks/startup.py``). Calling the same kernel,
``torch._fused_adam_``, gives bit-identical updates (``tests/test_model_and_train.py``).
"""

from collections.abc import Iterable

import torch


class Adam:
    """Adam with L2 weight decay, one fused update of every parameter per ``step``."""

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float, weight_decay: float,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 state: "tuple[list[torch.Tensor], ...] | None" = None) -> None:
        """``state``: (exp_avgs, exp_avg_sqs, steps) to continue from (default: zeros)."""
        self.params = list(params)
        self.lr, self.weight_decay, self.betas, self.eps = lr, weight_decay, betas, eps
        if state is None:
            state = ([torch.zeros_like(p, memory_format=torch.preserve_format)
                      for p in self.params],
                     [torch.zeros_like(p, memory_format=torch.preserve_format)
                      for p in self.params],
                     [torch.zeros((), dtype=torch.float32, device=p.device)
                      for p in self.params])
        self.exp_avgs, self.exp_avg_sqs, self.steps = (list(s) for s in state)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        """Update every parameter from its gradient (all of them must have one)."""
        self.apply([p.grad for p in self.params])

    @torch.no_grad()
    def apply(self, grads: list[torch.Tensor]) -> None:
        """Update every parameter from ``grads``, one per parameter."""
        torch._foreach_add_(self.steps, 1)
        torch._fused_adam_(self.params, grads, self.exp_avgs, self.exp_avg_sqs, [], self.steps,
                           lr=self.lr, beta1=self.betas[0], beta2=self.betas[1],
                           weight_decay=self.weight_decay, eps=self.eps, amsgrad=False,
                           maximize=False)

    @torch.no_grad()
    def update(self, grads: list[torch.Tensor]) -> list[torch.Tensor]:
        """The change ``step`` would make to each parameter given ``grads``, without making it
        (the landscape probe moves along it)."""
        beta1, beta2 = self.betas
        out = []
        for p, g, m, v, t in zip(self.params, grads, self.exp_avgs, self.exp_avg_sqs,
                                 self.steps, strict=True):
            g = g + self.weight_decay * p
            step = float(t) + 1
            m = m * beta1 + (1 - beta1) * g
            v = v * beta2 + (1 - beta2) * g * g
            denom = (v / (1 - beta2 ** step)).sqrt() + self.eps
            out.append(-self.lr / (1 - beta1 ** step) * m / denom)
        return out


class PackedAdam:
    """Adam for a packed module (``normcheck.packed``): each model its own learning rate,
    weight decay, moments and step count, all in the packed tensors.

    Model k's parameters, gradients and moments are views of the packed ones (``model_view``),
    so each ``step`` updates each model's own views with its own hyperparameters: the
    arithmetic ``Adam.step`` does for that model alone. The fused kernel is elementwise, so
    the models that share a learning rate and weight decay (a cell's replicates) are updated
    in one call over all their views: on a GPU, a kernel launch per (lr, weight decay) and not
    per model. A stopped model (``stop``) is no longer updated.
    """

    def __init__(self, params: list[torch.nn.Parameter], shapes: list[torch.Size],
                 lrs: list[float], weight_decays: list[float]) -> None:
        from normcheck.packed import model_view

        self.params, self.models = params, len(lrs)
        self.lrs, self.weight_decays = list(lrs), list(weight_decays)
        for p in params:  # the gradients live in place, so the views of them stay valid
            p.grad = torch.zeros_like(p)
        exp_avgs = [torch.zeros_like(p) for p in params]
        exp_avg_sqs = [torch.zeros_like(p) for p in params]

        def views(tensors: list[torch.Tensor], k: int) -> list[torch.Tensor]:
            return [model_view(t.detach(), self.models, s, k)
                    for t, s in zip(tensors, shapes, strict=True)]

        self.per_model = [
            Adam(views(params, k), lrs[k], weight_decays[k],
                 state=(views(exp_avgs, k), views(exp_avg_sqs, k),
                        [torch.zeros((), dtype=torch.float32, device=p.device) for p in params]))
            for k in range(self.models)]
        self.grads = [views([p.grad for p in params], k) for k in range(self.models)]
        self.active = list(range(self.models))
        self._group()

    def _group(self) -> None:
        """One Adam over the views of the active models of each (lr, weight decay)."""
        groups: dict[tuple[float, float], list[int]] = {}
        for k in self.active:
            groups.setdefault((self.lrs[k], self.weight_decays[k]), []).append(k)
        self.groups = [
            (Adam([p for k in ks for p in self.per_model[k].params], lr, wd,
                  state=tuple([t for k in ks for t in getattr(self.per_model[k], name)]
                              for name in ("exp_avgs", "exp_avg_sqs", "steps"))),
             [g for k in ks for g in self.grads[k]])
            for (lr, wd), ks in groups.items()]

    def zero_grad(self) -> None:
        torch._foreach_zero_([p.grad for p in self.params])

    def step(self) -> None:
        for adam, grads in self.groups:
            adam.apply(grads)

    def stop(self, k: int) -> None:
        """Model ``k`` is done (diverged, say): leave its weights as they are from now on."""
        self.active.remove(k)
        self._group()

    def model(self, k: int, params: list[torch.nn.Parameter]) -> Adam:
        """Model ``k``'s optimiser over ``params`` (its unpacked copy's), sharing its state:
        what the landscape probe asks for the update ``step`` would make."""
        own = self.per_model[k]
        return Adam(params, own.lr, own.weight_decay,
                    state=(own.exp_avgs, own.exp_avg_sqs, own.steps))
