"""P copies of the study's CNN as one module: one kernel per layer trains them all.

Each model's channels are a contiguous block: the convolutions are grouped (group k sees only
model k's input channels), the normalisation layers are the same layers over P times the
channels with P times the groups (``normcheck.norms``: BatchNorm's statistics are per channel,
GroupNorm's and LayerNorm's per group), and the classifier's linear layers are batched
matrix products with one weight matrix per model. So nothing mixes one model's numbers with
another's, and every packed tensor viewed as ``(P, *shape)`` holds at ``[k]`` exactly model
k's tensor of ``shape`` (``model_view``): that is how weights go in and out, and how the
optimiser updates each model with its own learning rate.

Inputs and outputs are side by side on the channel axis: images ``(B, P*3, 32, 32)``, model k's
in channels ``3k .. 3k+2``; logits ``(B, P*classes)``.
"""

import torch
from torch import nn

from normcheck import norms
from normcheck.model import CompactCNN


class PackedLinear(nn.Module):
    """``P`` independent linear layers on ``(B, P*in)`` inputs: a batched matrix product."""

    def __init__(self, models: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.models, self.in_features, self.out_features = models, in_features, out_features
        self.weight = nn.Parameter(torch.empty(models, out_features, in_features))
        self.bias = nn.Parameter(torch.empty(models, out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        x = x.reshape(b, self.models, self.in_features).transpose(0, 1)  # (P, B, in)
        y = torch.baddbmm(self.bias.unsqueeze(1), x, self.weight.transpose(1, 2))
        return y.transpose(0, 1).reshape(b, self.models * self.out_features)


class PackedCNN(nn.Module):
    """``models`` CompactCNNs of one architecture, side by side (see the module's docstring).

    The layers stand where CompactCNN's stand, so ``parameters()`` and ``buffers()`` pair up
    with any one model's, in order.
    """

    def __init__(self, models: int, fc_units: int, norm: str = "none", num_classes: int = 3,
                 base_channels: int = 16, dropout: float = 0.0) -> None:
        super().__init__()
        self.models, self.fc_units, self.norm = models, fc_units, norm
        self.num_classes, self.base_channels, self.dropout = num_classes, base_channels, dropout
        layer = norms.get(norm).layer
        p, c1, c2 = models, base_channels, 2 * base_channels
        self.features = nn.Sequential(
            nn.Conv2d(3 * p, c1 * p, kernel_size=3, padding=1, groups=p),
            layer(c1, True, p),
            nn.MaxPool2d(2),
            nn.ReLU(),
            nn.Conv2d(c1 * p, c2 * p, kernel_size=3, padding=1, groups=p),
            layer(c2, True, p),
            nn.MaxPool2d(2),
            nn.ReLU(),
        )
        # the flattened maps are already per model: (P*c2, 8, 8) is P blocks of (c2, 8, 8)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            PackedLinear(p, c2 * 8 * 8, fc_units),
            layer(fc_units, False, p),
            nn.ReLU(),
        )
        self.head = PackedLinear(p, fc_units, num_classes)
        self.generators: list[torch.Generator] | None = None  # per-model dropout streams

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.classifier(self.features(x))
        if self.training and self.dropout > 0:
            hidden = self._dropout(hidden)
        return self.head(hidden)

    def _dropout(self, hidden: torch.Tensor) -> torch.Tensor:
        """Each model's dropout from its own stream: the mask torch's own CPU dropout draws,
        ``bernoulli(1 - p) / (1 - p)``, drawn per model from that model's generator."""
        keep = 1 - self.dropout
        blocks = hidden.view(hidden.shape[0], self.models, self.fc_units)
        shape = (hidden.shape[0], self.fc_units)
        masks = [torch.empty(shape, device=hidden.device).bernoulli_(keep, generator=g)
                 .div_(keep) for g in self.generators]
        return (blocks * torch.stack(masks, 1)).view_as(hidden)

    def like(self) -> CompactCNN:
        """A fresh CompactCNN of this pack's architecture (its weights to be set)."""
        return CompactCNN(self.fc_units, self.norm, self.num_classes, self.base_channels,
                          self.dropout)

    @torch.no_grad()
    def load_model(self, k: int, model: CompactCNN) -> None:
        """Set model ``k``'s weights and statistics to ``model``'s."""
        for packed, own in _pairs(self, model):
            if own.dim() == 0:  # BatchNorm's step counter: all models step together
                packed.copy_(own)
            else:
                model_view(packed, self.models, own.shape, k).copy_(own)

    @torch.no_grad()
    def clear(self, k: int) -> None:
        """Model ``k``'s weights to zero and its statistics to their start: a stopped model
        whose numbers were not finite computes finite ones from then on."""
        zero = self.like()  # a fresh model's statistics are at their start
        for t in zero.parameters():
            t.zero_()
        for packed, own in _pairs(self, zero):
            if own.dim() > 0:
                model_view(packed, self.models, own.shape, k).copy_(own)

    @torch.no_grad()
    def model(self, k: int) -> CompactCNN:
        """Model ``k`` alone, as an unpacked CompactCNN (a copy, in this pack's mode)."""
        own = self.like().to(next(self.parameters()).device,
                             memory_format=torch.channels_last)
        for packed, mine in _pairs(self, own):
            mine.copy_(packed if mine.dim() == 0
                       else model_view(packed, self.models, mine.shape, k))
        return own.train(self.training)


def model_view(packed: torch.Tensor, models: int, shape: torch.Size, k: int) -> torch.Tensor:
    """Model ``k``'s part of a packed tensor: a view of it, of one model's ``shape``."""
    return packed.view(models, *shape)[k]


def _pairs(pack: PackedCNN, model: CompactCNN) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The pack's tensors beside one model's, parameters then buffers, in order."""
    ours = [*pack.parameters(), *pack.buffers()]
    theirs = [*model.parameters(), *model.buffers()]
    if len(ours) != len(theirs):
        raise ValueError(f"a pack of {pack.norm} models cannot hold this model: it has "
                         f"{len(theirs)} tensors, a packed one {len(ours)}")
    return list(zip(ours, theirs, strict=True))
