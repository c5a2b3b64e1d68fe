"""The study's compact CNN, with the normalization layer (``normcheck.norms``) as a parameter."""

import torch
from torch import nn

from normcheck import norms


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
        layer = norms.get(norm).layer  # (channels, spatial) -> module
        c1, c2 = base_channels, 2 * base_channels
        self.features = nn.Sequential(
            nn.Conv2d(3, c1, kernel_size=3, padding=1),
            layer(c1, True),
            nn.MaxPool2d(2),
            nn.ReLU(),
            nn.Conv2d(c1, c2, kernel_size=3, padding=1),
            layer(c2, True),
            nn.MaxPool2d(2),
            nn.ReLU(),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c2 * 8 * 8, fc_units),
            layer(fc_units, False),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(fc_units, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
