"""The training loop: data resident on the device, one seeded shuffle per epoch.

A diverging run (non-finite loss) is a result: it stops early and comes back marked.
"""

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F

from normcheck.config import TrainConfig
from normcheck.data import SplitData
from normcheck.model import CompactCNN
from normcheck.optimizer import Adam
from normcheck.stability import PROBE_BATCH, landscape_probe, probe_batch, run_signals

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


@dataclass(frozen=True)
class EpochMetrics:
    epoch: int
    train_loss: float
    train_acc: float
    val_loss: float
    val_acc: float
    # landscape probe at the end of the epoch (see normcheck.stability); NaN once diverged
    loss_range: float = math.nan
    grad_change: float = math.nan
    beta_smoothness: float = math.nan

    def metrics(self) -> dict[str, float]:
        """Everything but the epoch number, as logged to MLflow per step."""
        return {k: v for k, v in asdict(self).items() if k != "epoch"}


@dataclass
class RunResult:
    """What one configuration's training produced."""

    config: TrainConfig
    history: list[EpochMetrics] = field(default_factory=list)
    test_acc: float = math.nan
    initial_train_loss: float = math.nan  # the loss of the first batch, before any update
    diverged: bool = False
    max_grad_norm: float = 0.0
    train_seconds: float = 0.0
    device: str = "cpu"
    n_val: int = 0
    num_classes: int = 0
    run_id: str = ""  # the MLflow run, once logged

    @property
    def best_val_acc(self) -> float:
        return max((m.val_acc for m in self.history), default=math.nan)

    @property
    def best_epoch(self) -> int:
        return max(self.history, key=lambda m: m.val_acc).epoch if self.history else 0

    @property
    def final(self) -> EpochMetrics | None:
        return self.history[-1] if self.history else None

    def summary(self) -> dict[str, float]:
        """The final metrics, as logged to MLflow and written to metrics.csv."""
        last = self.final

        def mean(key: str) -> float:
            values = [getattr(m, key) for m in self.history if math.isfinite(getattr(m, key))]
            return sum(values) / len(values) if values else math.nan

        return {
            "best_val_acc": self.best_val_acc,
            "best_epoch": self.best_epoch,
            "final_val_acc": last.val_acc if last else math.nan,
            "final_val_loss": last.val_loss if last else math.nan,
            "final_train_acc": last.train_acc if last else math.nan,
            "final_train_loss": last.train_loss if last else math.nan,
            "test_acc": self.test_acc,
            "diverged": float(self.diverged),
            "epochs_run": len(self.history),
            "max_grad_norm": self.max_grad_norm,
            "initial_train_loss": self.initial_train_loss,
            **run_signals(self.history, self.initial_train_loss, self.diverged,
                          self.num_classes),
            "loss_range": mean("loss_range"),
            "grad_change": mean("grad_change"),
            "beta_smoothness": mean("beta_smoothness"),
            "train_seconds": self.train_seconds,
        }

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "RunResult":
        return cls(**{**d, "config": TrainConfig(**d["config"]),
                      "history": [EpochMetrics(**m) for m in d["history"]]})


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
    result = RunResult(config=config, device=str(device), n_val=len(data.val_y),
                       num_classes=data.num_classes)
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
                result.initial_train_loss = loss.item()
        train_loss = loss_sum.item() / len(order)
        probe = (landscape_probe(model, probe_x, probe_y, optimizer.update)
                 if math.isfinite(train_loss) else {})
        val_loss, val_acc = evaluate(model, data.val_x, data.val_y)
        metrics = EpochMetrics(epoch, train_loss, correct.item() / len(order), val_loss, val_acc,
                               **probe)
        result.history.append(metrics)
        if on_epoch is not None:
            on_epoch(metrics)
        if not (math.isfinite(metrics.train_loss) and math.isfinite(metrics.val_loss)):
            result.diverged = True
            break
    result.test_acc = evaluate(model, data.test_x, data.test_y)[1]
    result.max_grad_norm = max_grad_norm.item()
    result.train_seconds = time.perf_counter() - start
    return result, model
