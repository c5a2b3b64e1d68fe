"""The training loop for P runs at once, packed (``normcheck.packed``): what ``train`` does for
one run, done for each of them in the same kernels.

Each model keeps what it would have alone: its initial weights (built with its own seed, as
``train`` builds them), its split and its batch order (its own generator), its dropout stream,
its learning rate, weight decay and Adam state, its probe (on its own probe batch, with its
own optimiser's update), its divergence (a diverged model stops there, its weights are left
as they were, and the others go on) and its test accuracy. ``tests/test_packed.py`` checks a
packed step against P unpacked ones.
"""

import math
import time
from collections.abc import Callable
from dataclasses import fields

import torch
import torch.nn.functional as F

from normcheck.model import CompactCNN
from normcheck.optimizer import PackedAdam
from normcheck.packed import PackedCNN
from normcheck.packs import check_packable
from normcheck.probe import PROBE_BATCH, measures_shift
from normcheck.records import EpochMetrics, RunResult, TrainConfig
from normcheck.stability import landscape_probe, probe_batch
from normcheck.train import EVAL_BATCH, DeviceData

OnEpoch = Callable[[int, EpochMetrics], None]  # (model index, its epoch's metrics)


def stack(datas: list[DeviceData]) -> DeviceData:
    """P models' splits as one, each tensor stacked: ``train_x`` is ``(P, n, 3, 32, 32)``."""
    sizes = {(len(d.train_y), len(d.val_y), len(d.test_y)) for d in datas}
    if len(sizes) > 1:
        raise ValueError(f"a pack's splits must be of one size; got {sorted(sizes)}")
    tensors = [f.name for f in fields(DeviceData) if f.name.endswith(("_x", "_y"))]
    return DeviceData(*(torch.stack([getattr(d, name) for d in datas]) for name in tensors),
                      datas[0].num_classes, "+".join(d.fingerprint for d in datas))


def side_by_side(x: torch.Tensor) -> torch.Tensor:
    """``(P, B, 3, H, W)`` images to the pack's input ``(B, P*3, H, W)``, channels-last."""
    p, b, c, h, w = x.shape
    return x.permute(1, 3, 4, 0, 2).reshape(b, h, w, p * c).permute(0, 3, 1, 2)


def per_model_loss(logits: torch.Tensor, y: torch.Tensor, reduction: str = "mean"
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Each model's cross-entropy (``(P,)``) and correct predictions (``(P,)``), from the
    pack's logits ``(B, P*classes)`` and labels ``(P, B)``."""
    b, p = logits.shape[0], y.shape[0]
    logits = logits.view(b, p, -1).transpose(1, 2)  # (B, classes, P)
    loss = F.cross_entropy(logits, y.t(), reduction="none")  # (B, P)
    correct = (logits.argmax(1) == y.t()).sum(0)
    return (loss.mean(0) if reduction == "mean" else loss.sum(0)), correct


@torch.inference_mode()
def evaluate_packed(model: PackedCNN, x: torch.Tensor, y: torch.Tensor
                    ) -> tuple[list[float], list[float]]:
    """Each model's mean cross-entropy and accuracy on its own ``x[k]``, ``y[k]``, in eval
    mode (as ``normcheck.train.evaluate`` for one)."""
    was_training = model.training
    model.eval()
    p, n = y.shape
    loss = torch.zeros(p, device=x.device)
    correct = torch.zeros(p, device=x.device, dtype=torch.int64)
    for i in range(0, n, EVAL_BATCH):
        batch_loss, batch_correct = per_model_loss(model(side_by_side(x[:, i:i + EVAL_BATCH])),
                                                   y[:, i:i + EVAL_BATCH], "sum")
        loss += batch_loss
        correct += batch_correct
    model.train(was_training)
    return [v / n for v in loss.tolist()], [v / n for v in correct.tolist()]


def _build(configs: list[TrainConfig], num_classes: int, device: torch.device
           ) -> PackedCNN:
    """The pack, each model initialised as ``train`` initialises it alone (its seed, then
    its weights), and each model's dropout stream where that run's would start."""
    c = configs[0]
    pack = PackedCNN(len(configs), c.fc_units, c.norm, num_classes, c.base_channels,
                     c.dropout).to(device, memory_format=torch.channels_last)
    generators = []
    for k, config in enumerate(configs):
        torch.manual_seed(config.seed)
        pack.load_model(k, CompactCNN(config.fc_units, config.norm, num_classes,
                                      config.base_channels, config.dropout))
        stream = torch.Generator(device=device)
        if device.type == "cpu":  # on after the weights' draws, as the lone run's dropout
            stream.set_state(torch.get_rng_state())
        else:
            stream.manual_seed(config.seed)
        generators.append(stream)
    pack.generators = generators
    return pack


def train_packed(configs: list[TrainConfig], datas: list[DeviceData],
                 on_epoch: OnEpoch | None = None) -> list[tuple[RunResult, CompactCNN]]:
    """Train ``configs`` together, ``datas[k]`` model k's split; each run's metrics and its
    model, as ``train`` returns them one at a time."""
    check_packable(configs)
    p, c, first = len(configs), configs[0], datas[0]
    device = first.train_x.device
    data = stack(datas)
    model = _build(configs, first.num_classes, device)
    params = list(model.parameters())
    shapes = [q.shape for q in model.like().parameters()]
    optimizer = PackedAdam(params, shapes, [k.lr for k in configs],
                           [k.weight_decay for k in configs])
    shuffles = [torch.Generator(device=device).manual_seed(k.seed) for k in configs]
    probes = [probe_batch(d.train_y, PROBE_BATCH, k.seed).to(device)
              for k, d in zip(configs, datas, strict=True)]
    histories: list[list[EpochMetrics]] = [[] for _ in configs]
    initial, diverged = [math.nan] * p, [False] * p
    test_acc, done = [math.nan] * p, [False] * p
    models: list[CompactCNN | None] = [None] * p  # each as it stopped
    max_grad_norm = torch.zeros(p, device=device)
    n, rows = data.train_y.shape[1], torch.arange(p, device=device).unsqueeze(1)
    start = time.perf_counter()
    for epoch in range(1, c.epochs + 1):
        model.train()
        order = torch.stack([torch.randperm(n, generator=g, device=device) for g in shuffles])
        if n % c.batch_size == 1:  # as train: a lone last sample would break BatchNorm
            order = order[:, :-1]
        loss_sum = torch.zeros(p, device=device)
        correct = torch.zeros(p, device=device, dtype=torch.int64)
        for i in range(0, order.shape[1], c.batch_size):
            idx = order[:, i:i + c.batch_size]
            x, y = data.train_x[rows, idx], data.train_y[rows, idx]
            losses, batch_correct = per_model_loss(model(side_by_side(x)), y)
            optimizer.zero_grad()
            losses[optimizer.active].sum().backward()
            grad_norm = torch.linalg.vector_norm(torch.stack(
                [torch.linalg.vector_norm(q.grad.reshape(p, -1), dim=1) for q in params]), dim=0)
            optimizer.step()
            max_grad_norm = torch.fmax(max_grad_norm, grad_norm)  # fmax skips NaN
            loss_sum += losses.detach() * idx.shape[1]
            correct += batch_correct
            if epoch == 1 and i == 0:
                initial = losses.tolist()
        seen = order.shape[1]
        train_loss = [v / seen for v in loss_sum.tolist()]
        train_acc = [v / seen for v in correct.tolist()]
        val_loss, val_acc = evaluate_packed(model, data.val_x, data.val_y)
        ending = []
        for k in list(optimizer.active):
            probe = {}
            if math.isfinite(train_loss[k]):
                alone = model.model(k)
                probe = landscape_probe(
                    alone, data.train_x[k, probes[k]], data.train_y[k, probes[k]],
                    optimizer.model(k, list(alone.parameters())).update,
                    shift=measures_shift(epoch, c.epochs))
            metrics = EpochMetrics(epoch, train_loss[k], train_acc[k], val_loss[k],
                                   val_acc[k], **probe)
            histories[k].append(metrics)
            if on_epoch is not None:
                on_epoch(k, metrics)
            if not (math.isfinite(train_loss[k]) and math.isfinite(val_loss[k])):
                diverged[k] = True
            if diverged[k] or epoch == c.epochs:
                ending.append(k)
        if ending:  # the test split once per model, when it stops, as train does
            accs = evaluate_packed(model, data.test_x, data.test_y)[1]
            for k in ending:
                test_acc[k], done[k], models[k] = accs[k], True, model.model(k)
                if epoch < c.epochs:  # its slots zeroed: the pack computes nothing non-finite
                    optimizer.stop(k)
                    model.clear(k)
        if all(done):
            break
    seconds = (time.perf_counter() - start) / p  # each run's share of the pack's time
    grad_norms = max_grad_norm.tolist()
    return [(RunResult(k, tuple(histories[i]), test_acc[i], initial[i], diverged[i],
                       grad_norms[i], seconds, str(device), datas[i].val_y.numel(),
                       first.num_classes), models[i])
            for i, k in enumerate(configs)]
