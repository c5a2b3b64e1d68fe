"""The training loop: data resident on the device, one seeded shuffle per epoch.

A diverging run (non-finite loss) is a result: it stops early and comes back marked.
"""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from normcheck.data import SplitData
from normcheck.model import CompactCNN
from normcheck.optimizer import Adam
from normcheck.probe import PROBE_BATCH, measures_shift
from normcheck.records import EpochMetrics, RunResult, TrainConfig
from normcheck.stability import landscape_probe, probe_batch

EVAL_BATCH = 256


@dataclass(frozen=True)
class DeviceData:
    """Splits as float tensors in [0, 1] on the training device, converted once per process."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    fingerprint: str

    @classmethod
    def from_splits(cls, data: SplitData, device: torch.device) -> "DeviceData":
        def images(x: torch.Tensor) -> torch.Tensor:
            # channels-last: oneDNN's convolutions and pooling skip layout conversions with it
            return x.to(device).float().div_(255).contiguous(memory_format=torch.channels_last)

        return cls(images(data.train_x), data.train_y.to(device), images(data.val_x),
                   data.val_y.to(device), images(data.test_x), data.test_y.to(device),
                   data.num_classes, data.fingerprint)


@torch.inference_mode()
def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Mean cross-entropy and accuracy, in large batches with the model in eval mode."""
    was_training = model.training
    model.eval()
    loss = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device, dtype=torch.int64)
    for i in range(0, len(x), EVAL_BATCH):
        logits = model(x[i:i + EVAL_BATCH])
        loss += F.cross_entropy(logits, y[i:i + EVAL_BATCH], reduction="sum")
        correct += (logits.argmax(1) == y[i:i + EVAL_BATCH]).sum()
    model.train(was_training)
    return loss.item() / len(x), correct.item() / len(x)


def train(config: TrainConfig, data: DeviceData,
          on_epoch: Callable[[EpochMetrics], None] | None = None
          ) -> tuple[RunResult, torch.nn.Module]:
    """Train one configuration; return its metrics and the model. Same seed, same metrics."""
    device = data.train_x.device
    torch.manual_seed(config.seed)  # weight init and dropout
    shuffle = torch.Generator(device=device).manual_seed(config.seed)  # batch order
    model = CompactCNN(config.fc_units, config.norm, data.num_classes, config.base_channels,
                       config.dropout).to(device, memory_format=torch.channels_last)
    params = list(model.parameters())
    optimizer = Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    history: list[EpochMetrics] = []
    initial_train_loss, diverged = math.nan, False
    n = len(data.train_x)
    probe_idx = probe_batch(data.train_y, PROBE_BATCH, config.seed).to(device)
    probe_x, probe_y = data.train_x[probe_idx], data.train_y[probe_idx]
    max_grad_norm = torch.zeros((), device=device)
    start = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        model.train()
        order = torch.randperm(n, generator=shuffle, device=device)
        if n % config.batch_size == 1:  # a lone last sample would break BatchNorm's statistics
            order = order[:-1]
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.int64)
        for i in range(0, len(order), config.batch_size):
            idx = order[i:i + config.batch_size]
            x, y = data.train_x[idx], data.train_y[idx]
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad()
            loss.backward()
            grad_norm = torch.nn.utils.get_total_norm(p.grad for p in params)  # measured only
            optimizer.step()
            max_grad_norm = torch.fmax(max_grad_norm, grad_norm)  # fmax skips NaN
            loss_sum += loss.detach() * len(idx)
            correct += (logits.argmax(1) == y).sum()
            if epoch == 1 and i == 0:
                initial_train_loss = loss.item()
        train_loss = loss_sum.item() / len(order)
        probe = (landscape_probe(model, probe_x, probe_y, optimizer.update,
                                 shift=measures_shift(epoch, config.epochs))
                 if math.isfinite(train_loss) else {})
        val_loss, val_acc = evaluate(model, data.val_x, data.val_y)
        metrics = EpochMetrics(epoch, train_loss, correct.item() / len(order), val_loss, val_acc,
                               **probe)
        history.append(metrics)
        if on_epoch is not None:
            on_epoch(metrics)
        if not (math.isfinite(metrics.train_loss) and math.isfinite(metrics.val_loss)):
            diverged = True
            break
    test_acc = evaluate(model, data.test_x, data.test_y)[1]
    result = RunResult(config, tuple(history), test_acc, initial_train_loss, diverged,
                       max_grad_norm.item(), time.perf_counter() - start, str(device),
                       len(data.val_y), data.num_classes)
    return result, model
