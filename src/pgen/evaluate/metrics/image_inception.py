"""The Inception-V3 of classic FID and KID: the 2048-d pool3 features of the TensorFlow
``2015-12-05`` Inception graph that Heusel et al. (2017) used, ported to PyTorch.

The weights load from a local file, the converted TensorFlow graph that pytorch-fid ships as
``pt_inception-2015-12-05-6726825d.pth`` and torch-fidelity (hence torchmetrics) as
``weights-inception-2015-12-05-6726825d.pth``: one state dict, same keys. Nothing is
downloaded. Inputs are preprocessed as torch-fidelity does (uint8 RGB, TensorFlow-1 bilinear
resize to 299x299, ``(x - 128) / 128``), so scores are comparable with torchmetrics' FID.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pgen.evaluate.metrics.image import ImageLike, open_images

INPUT_SIZE = 299
WEIGHT_FILES = (
    "pt_inception-2015-12-05-6726825d.pth",
    "weights-inception-2015-12-05-6726825d.pth",
)


class _Conv(nn.Module):
    """Convolution without bias, batch norm with TensorFlow's epsilon, ReLU."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int | tuple[int, int],
        stride: int = 1,
        padding: int | tuple[int, int] = 0,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool(x: torch.Tensor) -> torch.Tensor:
    # TensorFlow's average pool leaves the zero padding out of the average.
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class _Block(nn.Module):
    """One mixed block: parallel branches of convolutions, concatenated. Attribute names
    are the checkpoint's (``branch5x5_1`` ...), so the TensorFlow port loads as is."""

    def _run(self, x: torch.Tensor, *names: str) -> torch.Tensor:
        for name in names:
            x = getattr(self, name)(x)
        return x


class _A(_Block):  # Mixed_5b-5d, 35x35
    def __init__(self, cin: int, pool: int) -> None:
        super().__init__()
        self.branch1x1 = _Conv(cin, 64, 1)
        self.branch5x5_1, self.branch5x5_2 = _Conv(cin, 48, 1), _Conv(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = _Conv(cin, 64, 1)
        self.branch3x3dbl_2 = _Conv(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _Conv(96, 96, 3, padding=1)
        self.branch_pool = _Conv(cin, pool, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [
                self.branch1x1(x),
                self._run(x, "branch5x5_1", "branch5x5_2"),
                self._run(x, "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"),
                self.branch_pool(_avg_pool(x)),
            ],
            1,
        )


class _B(_Block):  # Mixed_6a: 35x35 -> 17x17
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3 = _Conv(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = _Conv(cin, 64, 1)
        self.branch3x3dbl_2 = _Conv(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _Conv(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dbl = self._run(x, "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3")
        return torch.cat([self.branch3x3(x), dbl, F.max_pool2d(x, 3, stride=2)], 1)


class _C(_Block):  # Mixed_6b-6e, 17x17, factorized 7x7 convolutions
    def __init__(self, cin: int, c7: int) -> None:
        super().__init__()
        row, col = ((1, 7), (0, 3)), ((7, 1), (3, 0))
        self.branch1x1 = _Conv(cin, 192, 1)
        self.branch7x7_1 = _Conv(cin, c7, 1)
        self.branch7x7_2 = _Conv(c7, c7, row[0], padding=row[1])
        self.branch7x7_3 = _Conv(c7, 192, col[0], padding=col[1])
        self.branch7x7dbl_1 = _Conv(cin, c7, 1)
        self.branch7x7dbl_2 = _Conv(c7, c7, col[0], padding=col[1])
        self.branch7x7dbl_3 = _Conv(c7, c7, row[0], padding=row[1])
        self.branch7x7dbl_4 = _Conv(c7, c7, col[0], padding=col[1])
        self.branch7x7dbl_5 = _Conv(c7, 192, row[0], padding=row[1])
        self.branch_pool = _Conv(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dbl = [f"branch7x7dbl_{i}" for i in range(1, 6)]
        return torch.cat(
            [
                self.branch1x1(x),
                self._run(x, "branch7x7_1", "branch7x7_2", "branch7x7_3"),
                self._run(x, *dbl),
                self.branch_pool(_avg_pool(x)),
            ],
            1,
        )


class _D(_Block):  # Mixed_7a: 17x17 -> 8x8
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3_1, self.branch3x3_2 = _Conv(cin, 192, 1), _Conv(192, 320, 3, stride=2)
        self.branch7x7x3_1 = _Conv(cin, 192, 1)
        self.branch7x7x3_2 = _Conv(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = _Conv(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = _Conv(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seven = [f"branch7x7x3_{i}" for i in range(1, 5)]
        three = self._run(x, "branch3x3_1", "branch3x3_2")
        return torch.cat([three, self._run(x, *seven), F.max_pool2d(x, 3, stride=2)], 1)


class _E(_Block):  # Mixed_7b (average pool) and Mixed_7c (max pool, as in the TF graph)
    def __init__(self, cin: int, max_pool: bool) -> None:
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = _Conv(cin, 320, 1)
        self.branch3x3_1 = _Conv(cin, 384, 1)
        self.branch3x3_2a = _Conv(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = _Conv(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = _Conv(cin, 448, 1)
        self.branch3x3dbl_2 = _Conv(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = _Conv(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = _Conv(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = _Conv(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        three = self.branch3x3_1(x)
        dbl = self._run(x, "branch3x3dbl_1", "branch3x3dbl_2")
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _avg_pool(x)
        return torch.cat(
            [
                self.branch1x1(x),
                self.branch3x3_2a(three),
                self.branch3x3_2b(three),
                self.branch3x3dbl_3a(dbl),
                self.branch3x3dbl_3b(dbl),
                self.branch_pool(pooled),
            ],
            1,
        )


def resize_like_tensorflow1(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize as TensorFlow 1's ``resize_bilinear`` (no half-pixel centers), which
    the FID graph used; PyTorch's ``interpolate`` samples at other positions."""
    for axis in (2, 3):
        n = x.shape[axis]
        src = torch.arange(size, dtype=torch.float32) * torch.tensor(n / size, dtype=torch.float32)
        lo = src.long()
        hi = (lo + 1).clamp_max(n - 1)
        frac = (src - lo.float()).to(x.dtype)
        shape = [1, 1, 1, 1]
        shape[axis] = size
        low, high = x.index_select(axis, lo), x.index_select(axis, hi)
        x = low + (high - low) * frac.view(shape)
    return x


class FidInceptionV3(nn.Module):
    """uint8 RGB images (n, 3, h, w) in, pool3 features (n, 2048) out."""

    num_features = 2048  # torchmetrics reads this from custom feature modules

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = _Conv(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = _Conv(32, 32, 3)
        self.Conv2d_2b_3x3 = _Conv(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = _Conv(64, 80, 1)
        self.Conv2d_4a_3x3 = _Conv(80, 192, 3)
        self.Mixed_5b, self.Mixed_5c, self.Mixed_5d = _A(192, 32), _A(256, 64), _A(288, 64)
        self.Mixed_6a = _B(288)
        self.Mixed_6b, self.Mixed_6c = _C(768, 128), _C(768, 160)
        self.Mixed_6d, self.Mixed_6e = _C(768, 160), _C(768, 192)
        self.Mixed_7a, self.Mixed_7b, self.Mixed_7c = _D(768), _E(1280, False), _E(2048, True)
        self.fc = nn.Linear(2048, 1008)  # the logits; in the checkpoint, unused for FID

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype != torch.uint8:
            raise ValueError(f"expected uint8 images, got {images.dtype}")
        x = (resize_like_tensorflow1(images.float(), INPUT_SIZE) - 128) / 128
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, stride=2)
        x = F.max_pool2d(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x)), 3, stride=2)
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(self, f"Mixed_{name}")(x)
        return x.mean(dim=(2, 3))


def load_fid_inception(path: str | Path, device: str = "cpu") -> FidInceptionV3:
    """The FID Inception with the weights of ``path`` (a state dict; see WEIGHT_FILES)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"Inception weights {path}: no such file; FID/KID need the FID Inception-V3 "
            f"weights ({' or '.join(WEIGHT_FILES)}, from pytorch-fid or torch-fidelity)"
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = FidInceptionV3()
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as error:
        first = str(error).splitlines()[0]
        raise ValueError(f"{path}: not the FID Inception-V3 state dict ({first})") from None
    return model.to(device).eval()


class InceptionEncoder:
    """Pool3 features of images, the features classic FID and KID are defined on."""

    name = "inception"

    def __init__(self, weights: str | Path, device: str = "cpu") -> None:
        self.spec = str(weights)
        self.device = torch.device(device)
        self.model = load_fid_inception(weights, device)

    @torch.no_grad()
    def images(self, images: Sequence[ImageLike], normalize: bool = False) -> torch.Tensor:
        opened = open_images(images)
        if not opened:
            raise ValueError("no images to embed")
        # One image per call: the network resizes each to 299x299, so a set may mix sizes.
        rows = [self.model(to_uint8(image).to(self.device)) for image in opened]
        features = torch.cat(rows).float().cpu()
        return F.normalize(features, dim=-1) if normalize else features


def to_uint8(image: ImageLike) -> torch.Tensor:
    """One RGB image as a (1, 3, h, w) uint8 tensor."""
    array = np.asarray(open_images([image])[0], dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).unsqueeze(0)
