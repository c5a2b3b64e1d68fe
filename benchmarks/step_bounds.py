"""What bounds a training step on this machine, and whether training configurations together helps.

Prints, for one step of the study's model (batch 64, both norms, channels-last, normcheck's
Adam): the matmul peak on the same thread count; each convolution's forward and backward
time and GFLOP/s; the whole step's time and the share left to everything else (BatchNorm,
pooling, ReLU, linear layers, loss, optimizer). Then G configurations trained as one grouped
model (one pass of each batch through G sets of weights: a convolution with G times the
channels, grouped convolutions, batched matrix products) against G separate models,
alternating, per norm. Synthetic images: only the shapes matter for the time.

    python benchmarks/step_bounds.py
"""

import argparse
import statistics
import time
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn
from trainer import matmul_peak  # benchmarks/trainer.py: the same peak as the trainer benchmark

from normcheck.device import cpu_count
from normcheck.model import CompactCNN
from normcheck.optimizer import Adam

BATCH, FC_UNITS, CLASSES = 64, 64, 3


def ms_per_call(fn, repeats: int, warmup: int = 5) -> float:
    for _ in range(warmup):
        fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats * 1e3


def forward_backward(layer: nn.Module, x: torch.Tensor, grad: torch.Tensor) -> None:
    layer(x).backward(grad)


def train_step(model: nn.Module, optimizer: Adam, x: torch.Tensor, y: torch.Tensor) -> None:
    """One step of the study's model, as normcheck's trainer takes it."""
    optimizer.zero_grad()
    F.cross_entropy(model(x), y).backward()
    optimizer.step()


def conv_rows(repeats: int) -> tuple[list[str], float]:
    """Each convolution of the model alone, forward and backward; and their total ms."""
    rows, total = [], 0.0
    # the first convolution's input is the data: its backward computes the weight gradient only
    for c_in, c_out, size in ((3, 16, 32), (16, 32, 16)):
        x = torch.rand(BATCH, c_in, size, size).contiguous(memory_format=torch.channels_last)
        x.requires_grad_(c_in != 3)
        conv = nn.Conv2d(c_in, c_out, 3, padding=1).to(memory_format=torch.channels_last)
        grad = torch.randn(BATCH, c_out, size, size).contiguous(
            memory_format=torch.channels_last)
        flops = 2 * BATCH * size * size * c_out * c_in * 9
        backward_flops = flops * (2 if x.requires_grad else 1)
        forward = ms_per_call(partial(conv, x), repeats)
        both = ms_per_call(partial(forward_backward, conv, x, grad), repeats)
        total += both
        rows.append(f"conv {c_in}->{c_out} at {size}x{size}: forward {forward:.2f} ms "
                    f"({flops / forward / 1e6:.0f} GFLOP/s), backward {both - forward:.2f} ms "
                    f"({backward_flops / (both - forward) / 1e6:.0f} GFLOP/s)")
    return rows, total


class GroupedCNN(nn.Module):
    """G copies of the study's CNN as one model: same layers, G times the channels."""

    def __init__(self, groups: int, batchnorm: bool) -> None:
        super().__init__()
        g, fc = groups, FC_UNITS

        def norm(layer: type[nn.Module], channels: int) -> nn.Module:
            return layer(channels) if batchnorm else nn.Identity()

        self.groups = g
        self.features = nn.Sequential(
            nn.Conv2d(3, 16 * g, 3, padding=1), norm(nn.BatchNorm2d, 16 * g), nn.MaxPool2d(2),
            nn.ReLU(), nn.Conv2d(16 * g, 32 * g, 3, padding=1, groups=g),
            norm(nn.BatchNorm2d, 32 * g), nn.MaxPool2d(2), nn.ReLU())
        self.w1 = nn.Parameter(torch.randn(g, 32 * 8 * 8, fc) / 45)
        self.b1 = nn.Parameter(torch.zeros(g, 1, fc))
        self.norm1d = norm(nn.BatchNorm1d, g * fc)
        self.w2 = nn.Parameter(torch.randn(g, fc, CLASSES) / 8)
        self.b2 = nn.Parameter(torch.zeros(g, 1, CLASSES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of every copy, shape (G, batch, classes)."""
        h = self.features(x)
        n, g = len(h), self.groups
        h = torch.baddbmm(self.b1, h.reshape(n, g, -1).transpose(0, 1), self.w1)
        h = self.norm1d(h.transpose(0, 1).reshape(n, -1)).reshape(n, g, -1).transpose(0, 1)
        return torch.baddbmm(self.b2, F.dropout(F.relu(h), 0.5, self.training), self.w2)


def grouped_vs_separate(groups: int, norm: str, repeats: int) -> tuple[float, float]:
    """Median ms for G configurations' step: G separate models, and one grouped model."""
    x = torch.rand(BATCH, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, CLASSES, (BATCH,))
    models = [CompactCNN(FC_UNITS, norm).to(memory_format=torch.channels_last)
              for _ in range(groups)]
    optimizers = [Adam(m.parameters(), lr=1e-3, weight_decay=1e-4) for m in models]
    grouped = GroupedCNN(groups, norm == "batchnorm").to(memory_format=torch.channels_last)
    grouped_optimizer = Adam(grouped.parameters(), lr=1e-3, weight_decay=1e-4)

    def separate_step() -> None:
        for model, optimizer in zip(models, optimizers, strict=True):
            train_step(model, optimizer, x, y)

    def grouped_step() -> None:
        grouped_optimizer.zero_grad()
        # the sum of the copies' mean losses: each copy gets exactly its own gradient
        F.cross_entropy(grouped(x).reshape(-1, CLASSES), y.repeat(groups),
                        reduction="sum").div(BATCH).backward()
        grouped_optimizer.step()

    separate, together = [], []
    for _ in range(5):  # alternating, so a slow spell of the machine hits both
        separate.append(ms_per_call(separate_step, repeats))
        together.append(ms_per_call(grouped_step, repeats))
    return statistics.median(separate), statistics.median(together)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=cpu_count(), help="torch threads [cores]")
    parser.add_argument("--groups", type=int, nargs="+", default=[3, 6],
                        help="configurations trained together [3 6]")
    parser.add_argument("--repeats", type=int, default=20, help="steps per timing [20]")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{args.threads} threads; matmul peak {matmul_peak(torch.device('cpu')):.0f} GFLOP/s "
          f"(FP32, 2048^2, best of 10)")
    rows, conv_ms = conv_rows(args.repeats * 2)
    for row in rows:
        print(row)
    x = torch.rand(BATCH, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, CLASSES, (BATCH,))
    for norm in ("none", "batchnorm"):
        model = CompactCNN(FC_UNITS, norm).to(memory_format=torch.channels_last)
        optimizer = Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
        step_ms = ms_per_call(partial(train_step, model, optimizer, x, y), args.repeats * 2)
        print(f"one training step, norm={norm}: {step_ms:.1f} ms; the convolutions above "
              f"{conv_ms:.1f} ms ({conv_ms / step_ms:.0%}), everything else "
              f"{step_ms - conv_ms:.1f} ms")
    print("configurations trained together (one grouped model) vs separately, per step:")
    for groups in args.groups:
        for norm in ("none", "batchnorm"):
            separate, together = grouped_vs_separate(groups, norm, args.repeats)
            print(f"  G={groups} norm={norm}: separate {separate:.1f} ms, grouped "
                  f"{together:.1f} ms: {separate / together:.2f}x")


if __name__ == "__main__":
    main()
