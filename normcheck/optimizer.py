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
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        self.params = list(params)
        self.lr, self.weight_decay, self.betas, self.eps = lr, weight_decay, betas, eps
        self.exp_avgs = [torch.zeros_like(p, memory_format=torch.preserve_format)
                         for p in self.params]
        self.exp_avg_sqs = [torch.zeros_like(p, memory_format=torch.preserve_format)
                            for p in self.params]
        self.steps = [torch.zeros((), dtype=torch.float32, device=p.device) for p in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """Update every parameter from its gradient (all of them must have one)."""
        torch._foreach_add_(self.steps, 1)
        torch._fused_adam_(self.params, [p.grad for p in self.params], self.exp_avgs,
                           self.exp_avg_sqs, [], self.steps, lr=self.lr, beta1=self.betas[0],
                           beta2=self.betas[1], weight_decay=self.weight_decay, eps=self.eps,
                           amsgrad=False, maximize=False)

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
