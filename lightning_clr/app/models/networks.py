"""The networks of the examples, each a plain ``nn.Module`` built from ``input_shape`` (one sample's shape,
``(C, L)`` or ``(C, H, W)``, as the data modules report it) and ``num_classes`` (the logits).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MLP", "CifarFull", "ResNet", "ResNet20", "SmallCNN", "WithinChannelLRN"]


class _Net(nn.Module):
    """A network for samples of ``input_shape`` (of a length in ``dims``) and ``num_classes`` outputs."""

    def __init__(self, input_shape: Sequence[int], num_classes: int, dims: tuple[int, ...]) -> None:
        super().__init__()
        shape = tuple(int(d) for d in input_shape)
        if len(shape) not in dims or min(shape) < 1:
            raise ValueError(
                f"input_shape={shape!r} must have {' or '.join(map(str, dims))} positive dimensions"
            )
        if num_classes < 2:
            raise ValueError(f"num_classes={num_classes!r} must be at least 2")
        self.input_shape: tuple[int, ...] = shape
        self.num_classes = num_classes


def _flat_features(features: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Number of features ``features`` produces for one sample of ``input_shape``."""
    with torch.no_grad():
        return features(torch.zeros(1, *input_shape)).numel()


class MLP(_Net):
    """Fully connected network: flatten, then ``Linear -> ReLU [-> Dropout]`` per hidden layer, then a head.

    Args:
        hidden_sizes: widths of the hidden layers (empty for logistic regression).
        dropout: dropout probability after each hidden layer, in ``[0, 1)``.

    Example::

        >>> net = MLP(input_shape=(1, 40), num_classes=10, hidden_sizes=(100, 100))
        >>> net(torch.randn(8, 1, 40)).shape
        torch.Size([8, 10])
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        hidden_sizes: Sequence[int] = (256, 256),
        dropout: float = 0.0,
    ) -> None:
        super().__init__(input_shape, num_classes, dims=(1, 2, 3))
        hidden_sizes = tuple(int(h) for h in hidden_sizes)
        if any(h < 1 for h in hidden_sizes):
            raise ValueError(f"hidden_sizes={hidden_sizes!r} must all be positive")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout={dropout!r} must be in [0, 1)")

        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(self.input_shape)
        for hidden in hidden_sizes:
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = hidden
        layers.append(nn.Linear(width, num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class SmallCNN(_Net):
    """Three stride-2 convolutions and a linear head, for 1-D ``(C, L)`` or 2-D ``(C, H, W)`` input (which may
    arrive flattened, as MNIST-1D stores it).

    For 1-D input it is exactly the MNIST-1D paper's ``ConvBase`` (Greydanus 2020; 5,210 parameters); for
    2-D input the same design with ``Conv2d`` and 3x3 kernels throughout.

    Args:
        channels: channels of every convolution.

    Example::

        >>> net = SmallCNN(input_shape=(1, 40), num_classes=10)
        >>> sum(p.numel() for p in net.parameters())
        5210
        >>> SmallCNN(input_shape=(1, 28, 28), num_classes=10)(torch.randn(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """

    def __init__(self, input_shape: Sequence[int], num_classes: int, channels: int = 25) -> None:
        super().__init__(input_shape, num_classes, dims=(2, 3))
        if channels < 1:
            raise ValueError(f"channels={channels!r} must be positive")

        conv = nn.Conv1d if len(self.input_shape) == 2 else nn.Conv2d
        first_kernel = 5 if conv is nn.Conv1d else 3
        shapes = [(self.input_shape[0], first_kernel), (channels, 3), (channels, 3)]  # (in channels, kernel)
        layers = [m for c, k in shapes for m in (conv(c, channels, k, stride=2, padding=1), nn.ReLU())]
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.head = nn.Linear(_flat_features(self.features, self.input_shape), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x.reshape(x.shape[0], *self.input_shape)))


class WithinChannelLRN(nn.Module):
    """Caffe's local response normalisation with ``norm_region: WITHIN_CHANNEL`` (``nn.LocalResponseNorm``
    is its ``ACROSS_CHANNELS`` mode): ``y = x / (1 + alpha * mean(x**2 over the window)) ** beta``, the window
    zero padded and always averaged over ``local_size**2`` positions, as Caffe does.

    Example::

        >>> lrn = WithinChannelLRN(local_size=3, alpha=5e-5, beta=0.75)
        >>> lrn(torch.full((1, 1, 4, 4), 100.0))[0, 0, 1, 1]  # interior: 100 / (1 + 5e-5 * 100**2) ** 0.75
        tensor(73.7788)
    """

    def __init__(self, local_size: int = 3, alpha: float = 5e-5, beta: float = 0.75) -> None:
        super().__init__()
        if local_size < 1 or local_size % 2 == 0:
            raise ValueError(f"local_size={local_size!r} must be a positive odd number")
        self.local_size, self.alpha, self.beta = local_size, alpha, beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean_square = F.avg_pool2d(
            x.square(), self.local_size, stride=1, padding=self.local_size // 2, count_include_pad=True
        )
        return x * (1 + self.alpha * mean_square).pow(-self.beta)

    def extra_repr(self) -> str:
        return f"local_size={self.local_size}, alpha={self.alpha}, beta={self.beta}"


class CifarFull(_Net):
    """Caffe's "CIFAR-10 full" network, the one Smith trained in the CLR paper (WACV 2017, section 4.1.1).

    Layer for layer BVLC Caffe's ``examples/cifar10/cifar10_full_train_test.prototxt``, with its layer
    names (pooling rounds up as Caffe's: ``ceil_mode=True``); 89,578 parameters. Not reproduced: Caffe's
    Gaussian initialisation (tuned for [0, 255] pixels) and per-layer LR and decay multipliers (which
    belong to the optimizer's param groups).

    Example::

        >>> net = CifarFull()
        >>> net(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 10])
        >>> net.ip1.in_features
        1024
    """

    def __init__(self, input_shape: Sequence[int] = (3, 32, 32), num_classes: int = 10) -> None:
        super().__init__(input_shape, num_classes, dims=(3,))
        self.features = nn.Sequential(
            OrderedDict(
                conv1=nn.Conv2d(self.input_shape[0], 32, 5, padding=2),
                pool1=nn.MaxPool2d(3, stride=2, ceil_mode=True),
                relu1=nn.ReLU(),
                norm1=WithinChannelLRN(local_size=3, alpha=5e-5, beta=0.75),
                conv2=nn.Conv2d(32, 32, 5, padding=2),
                relu2=nn.ReLU(),
                pool2=nn.AvgPool2d(3, stride=2, ceil_mode=True),
                norm2=WithinChannelLRN(local_size=3, alpha=5e-5, beta=0.75),
                conv3=nn.Conv2d(32, 64, 5, padding=2),
                relu3=nn.ReLU(),
                pool3=nn.AvgPool2d(3, stride=2, ceil_mode=True),
                flatten=nn.Flatten(),
            )
        )
        self.ip1 = nn.Linear(_flat_features(self.features, self.input_shape), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ip1(self.features(x))


class _BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers and an option-A shortcut (identity, or subsample + zero-pad channels)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.stride = stride
        self.extra_channels = out_channels - in_channels

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.extra_channels:
            half = self.extra_channels // 2
            x = F.pad(x, (0, 0, 0, 0, half, self.extra_channels - half))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(_Net):
    """The CIFAR ResNet of He et al., "Deep Residual Learning for Image Recognition" (CVPR 2016), sec. 4.2.

    Three stages of ``(depth - 2) / 6`` basic blocks with 16, 32 and 64 channels, the paper's option-A
    shortcuts (no parameters) and He initialisation: depth 20, 32, 44, 56, 110 give the paper's 0.27M to
    1.7M parameters.

    Args:
        depth: ``6n + 2`` layers.

    Example::

        >>> net = ResNet(depth=56)
        >>> round(sum(p.numel() for p in net.parameters()) / 1e6, 2)
        0.85
    """

    def __init__(
        self, input_shape: Sequence[int] = (3, 32, 32), num_classes: int = 10, depth: int = 20
    ) -> None:
        super().__init__(input_shape, num_classes, dims=(3,))
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"depth={depth!r} must be 6n + 2 for some n >= 1 (20, 32, 44, 56, 110, ...)")
        self.depth = depth
        blocks_per_stage = (depth - 2) // 6

        self.conv1 = nn.Conv2d(self.input_shape[0], 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        stages: list[nn.Module] = []
        in_channels = 16
        for out_channels, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = [_BasicBlock(in_channels, out_channels, stride)]
            blocks += [_BasicBlock(out_channels, out_channels, 1) for _ in range(blocks_per_stage - 1)]
            stages.append(nn.Sequential(*blocks))
            in_channels = out_channels
        self.stages = nn.Sequential(*stages)
        self.fc = nn.Linear(64, num_classes)

        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.stages(F.relu(self.bn1(self.conv1(x))))
        return self.fc(out.mean(dim=(2, 3)))


class ResNet20(ResNet):
    """:class:`ResNet` of depth 20 (0.27M parameters), the CIFAR-10 baseline of He et al. (2016).

    Example::

        >>> ResNet20()(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """

    def __init__(self, input_shape: Sequence[int] = (3, 32, 32), num_classes: int = 10) -> None:
        super().__init__(input_shape=input_shape, num_classes=num_classes, depth=20)
