"""A small convolutional classifier of grayscale digits whose penultimate layer serves as the feature space
of the domain metrics (``ganlab.metrics.features.DomainFeatures``), in the spirit of the LeNet features
used for FID on MNIST in place of ImageNet's InceptionV3.

Layers: ``conv3x3(width) - ReLU - maxpool2 - conv3x3(2 width) - ReLU - adaptive avgpool to 4x4 -
linear(feature_dim) - ReLU`` (the features) ``- linear(num_classes)`` (the logits). The adaptive pooling
makes one architecture fit both 8x8 digits and 28x28 MNIST.
"""

from __future__ import annotations

from torch import Tensor, nn


class Classifier(nn.Module):
    """``images in [-1, 1] -> logits``; :meth:`features` gives the ``feature_dim`` penultimate activations."""

    def __init__(
        self, in_channels: int = 1, num_classes: int = 10, width: int = 16, feature_dim: int = 64
    ) -> None:
        super().__init__()
        self.in_channels, self.num_classes = int(in_channels), int(num_classes)
        self.width, self.feature_dim = int(width), int(feature_dim)
        self.body = nn.Sequential(
            nn.Conv2d(self.in_channels, self.width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(self.width, 2 * self.width, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
            nn.Linear(2 * self.width * 16, self.feature_dim),
            nn.ReLU(),
        )
        self.head = nn.Linear(self.feature_dim, self.num_classes)

    def config(self) -> dict[str, int]:
        """The constructor arguments, stored next to the weights so that they reload without code."""
        return {
            "in_channels": self.in_channels,
            "num_classes": self.num_classes,
            "width": self.width,
            "feature_dim": self.feature_dim,
        }

    def features(self, x: Tensor) -> Tensor:
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))
