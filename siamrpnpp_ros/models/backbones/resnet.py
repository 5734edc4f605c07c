"""ResNet-50 with atrous (dilated) layer3/layer4, as used by SiamRPN++.

The layout follows pysot's ``resnet_atrous`` so that its checkpoints load key
for key. Compared with torchvision's ResNet-50 it differs in ways that change
the output size and therefore the score-map geometry:

* the 7x7 stem conv has padding 0;
* layer2 downsamples with an *unpadded* 3x3 conv (also in its shortcut);
* layer3 and layer4 keep stride 1 and dilate instead (2 and 4), their first
  block using half the dilation, so the receptive field grows without
  shrinking the 31x31 search feature.

Spatial sizes: 127 -> 61 -> 31 -> 31 -> 15 -> 15 -> 15 (exemplar) and
255 -> 125 -> 63 -> 63 -> 31 -> 31 -> 31 (search), for stem, maxpool,
layer1..layer4.
"""

from __future__ import annotations

from typing import Optional, Sequence

from torch import Tensor, nn


class Bottleneck(nn.Module):
    """1x1 -> 3x3 -> 1x1 residual block with 4x channel expansion.

    Input ``(B, inplanes, H, W)``, output ``(B, 4*planes, H', W')`` with ``H'``
    set by the 3x3 conv's stride/padding/dilation (the shortcut must match it).
    """

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        padding: int = 1,
        dilation: int = 1,
        downsample: Optional[nn.Module] = None,
    ) -> None:
        super().__init__()
        # Attribute creation order fixes the state-dict key order (conv1, bn1,
        # ..., bn3, downsample), which must equal pysot's.
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(
            planes,
            planes,
            kernel_size=3,
            stride=stride,
            padding=padding,
            dilation=dilation,
            bias=False,
        )
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        """The block's output: ``relu(bn3(conv3(...)) + identity)``, identity downsampled where needed."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        result: Tensor = self.relu(out + identity)
        return result


def _make_layer(inplanes: int, planes: int, blocks: int, stride: int, dilation: int) -> nn.Sequential:
    """One ResNet stage following pysot's atrous rules.

    First block: stride ``stride``; if the stage dilates (``dilation > 1``) its
    3x3 conv and its 3x3 shortcut use ``dilation // 2`` (so the step from the
    previous stage's dilation is gradual), otherwise a stride-2 block has no
    padding at all. Remaining blocks: stride 1, dilation ``dilation``, padding
    ``dilation`` (size preserving).
    """
    if stride != 1 and dilation != 1:
        raise ValueError("a stage either strides or dilates, not both")
    out_planes = planes * Bottleneck.expansion

    if dilation > 1:
        first_dilation = dilation // 2
        first_padding = first_dilation
    else:
        first_dilation = 1
        first_padding = 1 if stride == 1 else 0

    downsample: Optional[nn.Module] = None
    if stride != 1 or inplanes != out_planes:
        if stride == 1 and dilation == 1:
            shortcut = nn.Conv2d(inplanes, out_planes, kernel_size=1, bias=False)
        else:
            # A 3x3 shortcut, aligned with the first block's 3x3 conv so that
            # both branches produce the same spatial size.
            shortcut = nn.Conv2d(
                inplanes,
                out_planes,
                kernel_size=3,
                stride=stride,
                padding=first_padding,
                dilation=first_dilation,
                bias=False,
            )
        downsample = nn.Sequential(shortcut, nn.BatchNorm2d(out_planes))

    layers = [Bottleneck(inplanes, planes, stride, first_padding, first_dilation, downsample)]
    for _ in range(1, blocks):
        layers.append(Bottleneck(out_planes, planes, 1, dilation, dilation))
    return nn.Sequential(*layers)


# (planes, blocks, stride, dilation) of layer1..layer4.
_RESNET50_STAGES: tuple[tuple[int, int, int, int], ...] = (
    (64, 3, 1, 1),
    (128, 4, 2, 1),
    (256, 6, 1, 2),
    (512, 3, 1, 4),
)


class ResNet50(nn.Module):
    """pysot's atrous ResNet-50.

    ``forward`` returns the features of ``used_layers`` (0 = stem after ReLU,
    before the max-pool; 1..4 = layer1..layer4), e.g. for ``(2, 3, 4)`` and a
    ``(B, 3, 255, 255)`` input: ``[(B,512,31,31), (B,1024,31,31), (B,2048,31,31)]``.
    Only the stages up to ``max(used_layers)`` are built.
    """

    def __init__(self, used_layers: Sequence[int] = (2, 3, 4)) -> None:
        super().__init__()
        self.used_layers = tuple(used_layers)
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=0, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

        channels = [64]
        inplanes = 64
        self.num_stages = max(self.used_layers)
        for idx in range(self.num_stages):
            planes, blocks, stride, dilation = _RESNET50_STAGES[idx]
            setattr(self, f"layer{idx + 1}", _make_layer(inplanes, planes, blocks, stride, dilation))
            inplanes = planes * Bottleneck.expansion
            channels.append(inplanes)
        self.out_channels: tuple[int, ...] = tuple(channels[i] for i in self.used_layers)

    def forward(self, x: Tensor) -> list[Tensor]:
        """``x``: ``(B, 3, H, W)`` float image (BGR, 0..255). Returns used-layer features."""
        x = self.relu(self.bn1(self.conv1(x)))
        outs = [x]
        x = self.maxpool(x)
        for idx in range(1, self.num_stages + 1):
            x = getattr(self, f"layer{idx}")(x)
            outs.append(x)
        return [outs[i] for i in self.used_layers]
