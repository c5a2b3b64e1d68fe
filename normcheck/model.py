"""The study's compact CNN, with the normalization layer as a parameter."""

from collections.abc import Callable

import torch
from torch import nn

# norm name -> (2-d layer factory, 1-d layer factory), each taking a channel count.
# Adding layernorm or groupnorm is one entry here.
NORM_LAYERS: dict[str, tuple[Callable[[int], nn.Module], Callable[[int], nn.Module]]] = {
    "none": (lambda c: nn.Identity(), lambda c: nn.Identity()),
    "batchnorm": (nn.BatchNorm2d, nn.BatchNorm1d),
}


class CompactCNN(nn.Module):
    """conv-[norm]-ReLU-pool x2, then Linear-[norm]-ReLU-Dropout-Linear, for 32x32 RGB input.

    The feature blocks pool before the ReLU: max-pooling commutes with any non-decreasing
    function, so the outputs and gradients are the same as ReLU-then-pool, and the ReLU runs
    on a quarter of the elements.
    """

    def __init__(
        self,
        fc_units: int,
        norm: str = "none",
        num_classes: int = 3,
        base_channels: int = 16,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if norm not in NORM_LAYERS:
            raise ValueError(f"unknown norm {norm!r}; choose one of {sorted(NORM_LAYERS)}")
        norm2d, norm1d = NORM_LAYERS[norm]
        c1, c2 = base_channels, 2 * base_channels
        self.features = nn.Sequential(
            nn.Conv2d(3, c1, kernel_size=3, padding=1),
            norm2d(c1),
            nn.MaxPool2d(2),
            nn.ReLU(),
            nn.Conv2d(c1, c2, kernel_size=3, padding=1),
            norm2d(c2),
            nn.MaxPool2d(2),
            nn.ReLU(),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c2 * 8 * 8, fc_units),
            norm1d(fc_units),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(fc_units, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
