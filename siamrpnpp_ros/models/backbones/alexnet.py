"""AlexNet as in pysot's ``AlexNetLegacy`` (the SiamRPN / SiamFC variant).

All convs are unpadded and biased, each followed by BatchNorm; the last conv
has no ReLU. Sizes: 127 -> 59 -> 29 -> 25 -> 12 -> 10 -> 8 -> 6 and
287 -> 139 -> 69 -> 65 -> 32 -> 30 -> 28 -> 26 (exemplar 6x6, search 26x26).
"""

from __future__ import annotations

from torch import Tensor, nn

_ALEXNET_CHANNELS: tuple[int, ...] = (96, 256, 384, 384, 256)


class AlexNetLegacy(nn.Module):
    """Five conv layers in one ``features`` Sequential.

    Module indices (0 conv, 1 BN, 2 pool, 3 ReLU, 4 conv, ...) are kept exactly
    as pysot's because they are the checkpoint keys
    (``features.{0,1,4,5,8,9,11,12,14,15}``).

    ``forward`` returns a one-element list ``[(B, 256*width_mult, H', W')]``.
    """

    def __init__(self, width_mult: float = 1.0) -> None:
        super().__init__()
        c1, c2, c3, c4, c5 = (int(c * width_mult) for c in _ALEXNET_CHANNELS)
        self.features = nn.Sequential(
            nn.Conv2d(3, c1, kernel_size=11, stride=2),
            nn.BatchNorm2d(c1),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.ReLU(inplace=True),
            nn.Conv2d(c1, c2, kernel_size=5),
            nn.BatchNorm2d(c2),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.ReLU(inplace=True),
            nn.Conv2d(c2, c3, kernel_size=3),
            nn.BatchNorm2d(c3),
            nn.ReLU(inplace=True),
            nn.Conv2d(c3, c4, kernel_size=3),
            nn.BatchNorm2d(c4),
            nn.ReLU(inplace=True),
            nn.Conv2d(c4, c5, kernel_size=3),
            nn.BatchNorm2d(c5),
        )
        self.out_channels: tuple[int, ...] = (c5,)

    def forward(self, x: Tensor) -> list[Tensor]:
        """``x``: ``(B, 3, H, W)`` float image (BGR, 0..255)."""
        return [self.features(x)]
