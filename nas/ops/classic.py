"""Blocks of the classic CNNs: residual (basic, bottleneck, grouped, SE), dense block and transition, fire,
Inception (v1 and v3), ShuffleNetV2 unit, ConvNeXt block, Xception block, separable convs, and plain linear /
pooling pieces.

Residual blocks follow torchvision's ResNet v1.5: the stride sits on the 3×3 conv, and the shortcut is a
strided 1×1 conv + BN whenever the shape changes.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nas.ops.common import ConvBNAct, drop_path, make_act
from nas.ops.mobile import SqueezeExcite, channel_shuffle


class Shortcut(nn.Module):
    """Identity, or a strided 1×1 conv + BN when stride or width change."""

    def __init__(self, c_in: int, c: int, s: int, bn_eps: float = 1e-5, bn_momentum: float = 0.1):
        super().__init__()
        self.proj = None
        if s != 1 or c_in != c:
            self.proj = ConvBNAct(c_in, c, 1, s, act="none", bn_eps=bn_eps, bn_momentum=bn_momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.proj is None else self.proj(x)


class BasicBlock(nn.Module):
    """`basic`: two 3×3 convs (stride on the first) + shortcut. `preact` is the BN-ReLU-conv order
    of pre-activation ResNets and Wide ResNets, with `dropout` between the convs (WRN)."""

    def __init__(self, c_in: int, c: int, s: int = 1, preact: bool = False, dropout: float = 0.0,
                 bn_eps: float = 1e-5, bn_momentum: float = 0.1):
        super().__init__()
        bn = dict(bn_eps=bn_eps, bn_momentum=bn_momentum)
        self.preact = preact
        if preact:
            self.bn_in = nn.BatchNorm2d(c_in, eps=bn_eps, momentum=bn_momentum)
            self.conv1 = nn.Conv2d(c_in, c, 3, s, 1, bias=False)
            self.bn_mid = nn.BatchNorm2d(c, eps=bn_eps, momentum=bn_momentum)
            self.conv2 = nn.Conv2d(c, c, 3, 1, 1, bias=False)
            self.shortcut = None if (s == 1 and c_in == c) else nn.Conv2d(c_in, c, 1, s, bias=False)
        else:
            self.conv1 = ConvBNAct(c_in, c, 3, s, **bn)
            self.conv2 = ConvBNAct(c, c, 3, 1, act="none", **bn)
            self.shortcut = Shortcut(c_in, c, s, **bn)
        self.dropout = nn.Dropout(dropout)
        self.drop_path_rate = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.preact:
            pre = F.relu(self.bn_in(x))
            out = self.conv2(self.dropout(F.relu(self.bn_mid(self.conv1(pre)))))
            skip = x if self.shortcut is None else self.shortcut(pre)
            return skip + drop_path(out, self.drop_path_rate, self.training)
        out = self.conv2(self.dropout(self.conv1(x)))
        return F.relu(self.shortcut(x) + drop_path(out, self.drop_path_rate, self.training))


class Bottleneck(nn.Module):
    """`bottleneck`: 1×1 reduce to `e`·c, 3×3 (`groups` for ResNeXt), 1×1 expand to c, optional SE
    (`se` × c, SE-ResNet), + shortcut, ReLU. The stride sits on the 3×3 (`stride_on: 3x3`,
    torchvision's ResNet v1.5) or on the first 1×1 (`stride_on: 1x1`, the original ResNet v1 and the
    Caffe SENets); both have the same parameters, v1 has fewer multiply-adds."""

    def __init__(self, c_in: int, c: int, s: int = 1, e: float = 0.25, groups: int = 1,
                 se: float = 0.0, stride_on: str = "3x3", bn_eps: float = 1e-5,
                 bn_momentum: float = 0.1):
        super().__init__()
        bn = dict(bn_eps=bn_eps, bn_momentum=bn_momentum)
        mid = int(round(c * e))
        s1, s3 = (s, 1) if stride_on == "1x1" else (1, s)
        self.conv1 = ConvBNAct(c_in, mid, 1, s1, **bn)
        self.conv2 = ConvBNAct(mid, mid, 3, s3, groups=groups, **bn)
        self.conv3 = ConvBNAct(mid, c, 1, act="none", **bn)
        self.se = SqueezeExcite(c, ratio=se, act="relu") if se > 0 else None
        self.shortcut = Shortcut(c_in, c, s, **bn)
        self.drop_path_rate = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv3(self.conv2(self.conv1(x)))
        if self.se is not None:
            out = self.se(out)
        return F.relu(self.shortcut(x) + drop_path(out, self.drop_path_rate, self.training))


class DenseBlock(nn.Module):
    """`dense`: `units` × (BN-ReLU-1×1 conv to bn_size·growth, BN-ReLU-3×3 conv to growth), each
    unit reading the concatenation of everything before it; out width c_in + units·growth."""

    def __init__(self, c_in: int, c: int, units: int = 6, growth: int = 32, bn_size: int = 4,
                 bn_eps: float = 1e-5, bn_momentum: float = 0.1):
        super().__init__()
        self.layers = nn.ModuleList()
        for i in range(units):
            width = c_in + i * growth
            self.layers.append(nn.Sequential(
                nn.BatchNorm2d(width, eps=bn_eps, momentum=bn_momentum), nn.ReLU(),
                nn.Conv2d(width, bn_size * growth, 1, bias=False),
                nn.BatchNorm2d(bn_size * growth, eps=bn_eps, momentum=bn_momentum), nn.ReLU(),
                nn.Conv2d(bn_size * growth, growth, 3, 1, 1, bias=False)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.layers:
            features.append(layer(torch.cat(features, 1)))
        return torch.cat(features, 1)


class Transition(nn.Module):
    """`transition`: BN-ReLU-1×1 conv to c, then 2×2 average pool with stride 2 (DenseNet)."""

    def __init__(self, c_in: int, c: int, s: int = 2, bn_eps: float = 1e-5,
                 bn_momentum: float = 0.1):
        super().__init__()
        self.bn = nn.BatchNorm2d(c_in, eps=bn_eps, momentum=bn_momentum)
        self.conv = nn.Conv2d(c_in, c, 1, bias=False)
        self.pool = nn.AvgPool2d(s, s)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.conv(F.relu(self.bn(x))))


class Fire(nn.Module):
    """`fire` (SqueezeNet): 1×1 squeeze, then 1×1 and 3×3 expand convs (c/2 each), concatenated,
    ReLU."""

    def __init__(self, c_in: int, c: int, squeeze: int = 16, bn_eps: float = 1e-5,
                 bn_momentum: float = 0.1):
        super().__init__()
        self.squeeze = nn.Conv2d(c_in, squeeze, 1)
        self.expand1x1 = nn.Conv2d(squeeze, c // 2, 1)
        self.expand3x3 = nn.Conv2d(squeeze, c - c // 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.squeeze(x))
        return torch.cat([F.relu(self.expand1x1(x)), F.relu(self.expand3x3(x))], 1)


class Inception(nn.Module):
    """`inception` (GoogLeNet): 1×1 | 1×1→3×3 | 1×1→k×k | 3×3 max pool→1×1 branches, concatenated.
    Widths b1, b2r, b2, b3r, b3, b4; c = b1 + b2 + b3 + b4. `k3` is the third branch's kernel (5 in
    the paper, 3 in torchvision's port)."""

    def __init__(self, c_in: int, c: int, b1: int = 64, b2r: int = 96, b2: int = 128, b3r: int = 16,
                 b3: int = 32, b4: int = 32, k3: int = 5, bn_eps: float = 1e-3,
                 bn_momentum: float = 0.1):
        super().__init__()
        bn = dict(bn_eps=bn_eps, bn_momentum=bn_momentum)
        self.branch1 = ConvBNAct(c_in, b1, 1, **bn)
        self.branch2 = nn.Sequential(ConvBNAct(c_in, b2r, 1, **bn), ConvBNAct(b2r, b2, 3, **bn))
        self.branch3 = nn.Sequential(ConvBNAct(c_in, b3r, 1, **bn), ConvBNAct(b3r, b3, k3, **bn))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, 1, 1), ConvBNAct(c_in, b4, 1, **bn))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class ShuffleUnit(nn.Module):
    """`shuffle` (ShuffleNetV2): stride 1 splits the channels and transforms one half; stride 2
    transforms both paths; the halves are concatenated and shuffled."""

    def __init__(self, c_in: int, c: int, s: int = 1, bn_eps: float = 1e-5,
                 bn_momentum: float = 0.1):
        super().__init__()
        bn = dict(bn_eps=bn_eps, bn_momentum=bn_momentum)
        half = c // 2
        self.s = s
        if s > 1:
            self.branch1 = nn.Sequential(ConvBNAct(c_in, c_in, 3, s, groups=c_in, act="none", **bn),
                                         ConvBNAct(c_in, half, 1, **bn))
        else:
            self.branch1 = None
        width = c_in if s > 1 else c_in // 2
        self.branch2 = nn.Sequential(ConvBNAct(width, half, 1, **bn),
                                     ConvBNAct(half, half, 3, s, groups=half, act="none", **bn),
                                     ConvBNAct(half, half, 1, **bn))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.branch1 is None:
            keep, rest = x.chunk(2, dim=1)
            out = torch.cat([keep, self.branch2(rest)], 1)
        else:
            out = torch.cat([self.branch1(x), self.branch2(x)], 1)
        return channel_shuffle(out, 2)


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an N×C×H×W tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias,
                            self.eps).permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):
    """`convnext`: 7×7 depthwise conv, LayerNorm, 1×1 to e·c, GELU, 1×1 back, layer scale,
    residual."""

    def __init__(self, c_in: int, c: int, k: int = 7, e: float = 4, layer_scale: float = 1e-6,
                 bn_eps: float = 1e-5, bn_momentum: float = 0.1):
        super().__init__()
        hidden = int(round(c * e))
        self.dw = nn.Conv2d(c, c, k, padding=k // 2, groups=c)
        self.norm = nn.LayerNorm(c, eps=1e-6)
        self.pw1 = nn.Linear(c, hidden)
        self.act = nn.GELU()
        self.pw2 = nn.Linear(hidden, c)
        self.gamma = nn.Parameter(torch.full((c,), layer_scale)) if layer_scale > 0 else None
        self.drop_path_rate = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.norm(self.dw(x).permute(0, 2, 3, 1))
        out = self.pw2(self.act(self.pw1(out)))
        if self.gamma is not None:
            out = out * self.gamma
        return x + drop_path(out.permute(0, 3, 1, 2), self.drop_path_rate, self.training)


class NormConv(nn.Module):
    """`ln_conv`: k×k conv with stride and bias, and a channel LayerNorm after it (`order: post`,
    ConvNeXt's stem) or before it (`order: pre`, its downsampling layers)."""

    def __init__(self, c_in: int, c: int, k: int = 2, s: int = 2, order: str = "pre",
                 bn_eps: float = 1e-5, bn_momentum: float = 0.1):
        super().__init__()
        self.order = order
        self.norm = LayerNorm2d(c_in if order == "pre" else c, eps=1e-6)
        self.conv = nn.Conv2d(c_in, c, k, s)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.norm(x)) if self.order == "pre" else self.norm(self.conv(x))


class DepthwiseSeparable(nn.Module):
    """`dwsep` (MobileNet v1): 3×3 depthwise + BN + act, then 1×1 pointwise + BN + act."""

    def __init__(self, c_in: int, c: int, k: int = 3, s: int = 1, act: str = "relu",
                 bn_eps: float = 1e-5, bn_momentum: float = 0.1):
        super().__init__()
        bn = dict(bn_eps=bn_eps, bn_momentum=bn_momentum)
        self.dw = ConvBNAct(c_in, c_in, k, s, groups=c_in, act=act, **bn)
        self.pw = ConvBNAct(c_in, c, 1, act=act, **bn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw(self.dw(x))


class GlobalPool(nn.Module):
    """`pool`: global average pool to 1×1 (keeps the 4-D shape)."""

    def __init__(self, c_in: int, c: int, bn_eps: float = 1e-5, bn_momentum: float = 0.1):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3), keepdim=True)


class Activation(nn.Module):
    """`act`: an activation alone (NASNet applies a ReLU to the last cell's output before pooling).
    """

    def __init__(self, c_in: int, c: int, act: str = "relu", bn_eps: float = 1e-5,
                 bn_momentum: float = 0.1):
        super().__init__()
        self.act = make_act(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x)


class Linear(nn.Module):
    """`linear`: flatten, fully connected layer to c, activation, dropout (VGG/AlexNet/MobileNetV3
    heads); `dropout_first` puts the dropout before the layer (AlexNet)."""

    def __init__(self, c_in: int, c: int, act: str = "relu", dropout: float = 0.0,
                 dropout_first: bool = False, bn_eps: float = 1e-5, bn_momentum: float = 0.1):
        super().__init__()
        self.dropout_first = dropout_first
        self.fc = nn.Linear(c_in, c)  # c_in is the flattened width (channels × height × width)
        self.act = make_act(act)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(x, 1)
        if self.dropout_first:
            return self.act(self.fc(self.dropout(x)))[:, :, None, None]
        return self.dropout(self.act(self.fc(x)))[:, :, None, None]


class BasicConv(nn.Module):
    """Conv (kh×kw kernel, no bias) + BN + ReLU, the unit of the Inception-v3 modules."""

    def __init__(self, c_in: int, c: int, k=1, s: int = 1, p=0, bn_eps: float = 1e-3,
                 bn_momentum: float = 0.1):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c, k, s, p, bias=False)
        self.bn = nn.BatchNorm2d(c, eps=bn_eps, momentum=bn_momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class Inception3(nn.Module):
    """`inception3`: the Inception-v3 modules (Szegedy et al., 2016), by `kind`: a (35×35,
    `pool_features`), b (35→17 grid reduction), c (17×17 with factorized 7×7 convs of width `c7`), d
    (17→8 reduction), e (8×8, expanded 1×3/3×1 filter banks). Branches are concatenated; widths
    follow the paper / torchvision."""

    def __init__(self, c_in: int, c: int, kind: str = "a", pool_features: int = 32, c7: int = 128,
                 bn_eps: float = 1e-3, bn_momentum: float = 0.1):
        super().__init__()
        bn = dict(bn_eps=bn_eps, bn_momentum=bn_momentum)
        unit = lambda i, o, k=1, s=1, p=0: BasicConv(i, o, k, s, p, **bn)  # noqa: E731
        self.kind = kind
        if kind == "a":
            self.branches = nn.ModuleList([
                unit(c_in, 64),
                nn.Sequential(unit(c_in, 48), unit(48, 64, 5, p=2)),
                nn.Sequential(unit(c_in, 64), unit(64, 96, 3, p=1), unit(96, 96, 3, p=1)),
                nn.Sequential(nn.AvgPool2d(3, 1, 1), unit(c_in, pool_features))])
        elif kind == "b":
            self.branches = nn.ModuleList([
                unit(c_in, 384, 3, 2),
                nn.Sequential(unit(c_in, 64), unit(64, 96, 3, p=1), unit(96, 96, 3, 2)),
                nn.MaxPool2d(3, 2)])
        elif kind == "c":
            self.branches = nn.ModuleList([
                unit(c_in, 192),
                nn.Sequential(unit(c_in, c7), unit(c7, c7, (1, 7), p=(0, 3)),
                              unit(c7, 192, (7, 1), p=(3, 0))),
                nn.Sequential(unit(c_in, c7), unit(c7, c7, (7, 1), p=(3, 0)),
                              unit(c7, c7, (1, 7), p=(0, 3)), unit(c7, c7, (7, 1), p=(3, 0)),
                              unit(c7, 192, (1, 7), p=(0, 3))),
                nn.Sequential(nn.AvgPool2d(3, 1, 1), unit(c_in, 192))])
        elif kind == "d":
            self.branches = nn.ModuleList([
                nn.Sequential(unit(c_in, 192), unit(192, 320, 3, 2)),
                nn.Sequential(unit(c_in, 192), unit(192, 192, (1, 7), p=(0, 3)),
                              unit(192, 192, (7, 1), p=(3, 0)), unit(192, 192, 3, 2)),
                nn.MaxPool2d(3, 2)])
        else:
            self.branches = nn.ModuleList([unit(c_in, 320), unit(c_in, 384), unit(c_in, 448),
                                           nn.Sequential(nn.AvgPool2d(3, 1, 1), unit(c_in, 192))])
            self.e_3x3 = nn.ModuleList([unit(384, 384, (1, 3), p=(0, 1)),
                                        unit(384, 384, (3, 1), p=(1, 0))])
            self.e_dbl = unit(448, 384, 3, p=1)
            self.e_dbl_3x3 = nn.ModuleList([unit(384, 384, (1, 3), p=(0, 1)),
                                            unit(384, 384, (3, 1), p=(1, 0))])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind != "e":
            return torch.cat([branch(x) for branch in self.branches], 1)
        b1, b3, bd, pool = (branch(x) for branch in self.branches)
        b3 = torch.cat([conv(b3) for conv in self.e_3x3], 1)
        bd = self.e_dbl(bd)
        bd = torch.cat([conv(bd) for conv in self.e_dbl_3x3], 1)
        return torch.cat([b1, b3, bd, pool], 1)


class SeparableConv(nn.Module):
    """`sepconv` (Xception): k×k depthwise then 1×1 pointwise with no norm between, then BN + act.
    """

    def __init__(self, c_in: int, c: int, k: int = 3, s: int = 1, act: str = "relu",
                 bn_eps: float = 1e-5, bn_momentum: float = 0.1):
        super().__init__()
        self.dw = nn.Conv2d(c_in, c_in, k, s, k // 2, groups=c_in, bias=False)
        self.pw = nn.Conv2d(c_in, c, 1, bias=False)
        self.bn = nn.BatchNorm2d(c, eps=bn_eps, momentum=bn_momentum)
        self.act = make_act(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.pw(self.dw(x))))


class XceptionBlock(nn.Module):
    """`xception`: `reps` × (ReLU, separable 3×3, BN) — widening on the first (`grow_first`) or the
    last — then a stride-2 3×3 max pool when strided, added to a 1×1 conv + BN shortcut (identity
    when the shape is kept). `start_relu: false` drops the first ReLU (the first entry-flow block).
    """

    def __init__(self, c_in: int, c: int, s: int = 1, reps: int = 2, start_relu: bool = True,
                 grow_first: bool = True, bn_eps: float = 1e-5, bn_momentum: float = 0.1):
        super().__init__()
        widths = [c_in] + [c] * reps if grow_first else [c_in] * reps + [c]
        layers = []
        for i in range(reps):
            if i > 0 or start_relu:
                layers.append(nn.ReLU())
            layers += [nn.Conv2d(widths[i], widths[i], 3, 1, 1, groups=widths[i], bias=False),
                       nn.Conv2d(widths[i], widths[i + 1], 1, bias=False),
                       nn.BatchNorm2d(widths[i + 1], eps=bn_eps, momentum=bn_momentum)]
        if s != 1:
            layers.append(nn.MaxPool2d(3, s, 1))
        self.rep = nn.Sequential(*layers)
        self.shortcut = None
        if s != 1 or c_in != c:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c, 1, s, bias=False),
                                          nn.BatchNorm2d(c, eps=bn_eps, momentum=bn_momentum))
        self.drop_path_rate = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.shortcut is None else self.shortcut(x)
        return skip + drop_path(self.rep(x), self.drop_path_rate, self.training)
