"""MobileNetV2 in pysot's dilated variant (used by SiamRPN++ mobilev2).

Differences from the classification network that matter for parity:

* no padding on stride-2 convs (stem and depth-wise), which is what makes a
  127 px exemplar give 15x15 and a 255 px search region 31x31 features;
* layers 4..7 keep stride 1 and dilate instead;
* every inverted-residual block has the 1x1 expansion conv, even with
  expansion factor 1 (state-dict keys ``conv.0`` .. ``conv.7`` everywhere).

Spatial sizes (stem, layer1, layer2, layer3, ...): 255 -> 127 -> 127 -> 63 -> 31
-> 31 ...; 127 -> 63 -> 63 -> 31 -> 15 -> 15 ...
"""

from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn

# (expansion t, base channels c, blocks n, first stride s, dilation d) of layer1..layer7.
_MOBILENETV2_STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 16, 1, 1, 1),
    (6, 24, 2, 2, 1),
    (6, 32, 3, 2, 1),
    (6, 64, 4, 1, 2),
    (6, 96, 3, 1, 2),
    (6, 160, 3, 1, 4),
    (6, 320, 1, 1, 4),
)
_STEM_CHANNELS = 32


class InvertedResidual(nn.Module):
    """1x1 expand + BN + ReLU6, 3x3 depth-wise + BN + ReLU6, 1x1 project + BN.

    Input ``(B, inp, H, W)`` -> ``(B, oup, H', W')``. The identity shortcut is
    added only when the block keeps both the size (stride 1) and the channels.
    """

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int, dilation: int) -> None:
        super().__init__()
        hidden = inp * expand_ratio
        # pysot: stride-2 convs are unpadded; otherwise "same" padding.
        padding = dilation if dilation > 1 else 2 - stride
        self.use_residual = stride == 1 and inp == oup
        self.conv = nn.Sequential(
            nn.Conv2d(inp, hidden, kernel_size=1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
            nn.Conv2d(
                hidden,
                hidden,
                kernel_size=3,
                stride=stride,
                padding=padding,
                dilation=dilation,
                groups=hidden,
                bias=False,
            ),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, oup, kernel_size=1, bias=False),
            nn.BatchNorm2d(oup),
        )

    def forward(self, x: Tensor) -> Tensor:
        """The block's output; the input is added back when ``use_residual``."""
        out: Tensor = self.conv(x)
        return x + out if self.use_residual else out


class MobileNetV2(nn.Module):
    """pysot's MobileNetV2 backbone.

    ``forward`` returns the features of ``used_layers`` (0 = stem ``layer0``,
    1..7 = ``layer1``..``layer7``); for width 1.4, ``(3, 5, 7)`` and a
    ``(B, 3, 255, 255)`` input: ``[(B,44,31,31), (B,134,31,31), (B,448,31,31)]``.
    Only stages up to ``max(used_layers)`` are built.
    """

    def __init__(self, width_mult: float = 1.0, used_layers: Sequence[int] = (3, 5, 7)) -> None:
        super().__init__()
        self.used_layers = tuple(used_layers)
        # int() truncation (not rounding) is what fixes pysot's channel counts.
        stem = int(_STEM_CHANNELS * width_mult)
        self.layer0 = nn.Sequential(
            nn.Conv2d(3, stem, kernel_size=3, stride=2, padding=0, bias=False),
            nn.BatchNorm2d(stem),
            nn.ReLU6(inplace=True),
        )
        channels = [stem]
        inp = stem
        prev_dilation = 1
        self.num_stages = max(self.used_layers)
        for idx in range(self.num_stages):
            t, c, n, s, d = _MOBILENETV2_STAGES[idx]
            oup = int(c * width_mult)
            # Entering a more dilated stage, the first block uses half the new
            # dilation so the sampling grid does not jump.
            first_dilation = d if d == prev_dilation else max(d // 2, 1)
            blocks = [InvertedResidual(inp, oup, s, t, first_dilation)]
            blocks += [InvertedResidual(oup, oup, 1, t, d) for _ in range(1, n)]
            setattr(self, f"layer{idx + 1}", nn.Sequential(*blocks))
            inp = oup
            prev_dilation = d
            channels.append(oup)
        self.out_channels: tuple[int, ...] = tuple(channels[i] for i in self.used_layers)

    def forward(self, x: Tensor) -> list[Tensor]:
        """``x``: ``(B, 3, H, W)`` float image (BGR, 0..255). Returns used-layer features."""
        x = self.layer0(x)
        outs = [x]
        for idx in range(1, self.num_stages + 1):
            x = getattr(self, f"layer{idx}")(x)
            outs.append(x)
        return [outs[i] for i in self.used_layers]
