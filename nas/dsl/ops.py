"""The op vocabulary as pure data: each op's parameters, their types and defaults, and its output shape.

`nas/ops/` implements every op named here in torch; a test checks that the two lists agree. Keeping the
schema here lets the DSL validate a file and infer every shape without importing torch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

ACTIVATIONS = ("relu", "relu6", "swish", "hardswish", "gelu", "sigmoid", "hsigmoid", "none")
GATES = ("sigmoid", "hsigmoid")

# A parameter kind is "int" (≥ 1), "int0" (≥ 0), "float", "frac" (0 ≤ x < 1), "bool", or a tuple of allowed
# strings. REQUIRED marks a parameter without default; SAME marks one that defaults to the input's value.
REQUIRED = object()
SAME = object()


@dataclass(frozen=True)
class Param:
    kind: Any
    default: Any = REQUIRED


@dataclass(frozen=True)
class OpSchema:
    name: str
    params: dict[str, Param]
    doc: str
    shape: Callable[[dict, tuple[int, int, int]], tuple[int, int, int]] | None = None
    strided: bool = True  # has an `s` parameter that shrinks the feature map
    family: str = "block"  # "block" ops take c from a stage row; "head" ops see the classes


def out_size(size: int, k: int, s: int, p: int, dilation: int = 1) -> int:
    """Spatial size after a k×k window with stride s and padding p (PyTorch's floor rule)."""
    return (size + 2 * p - dilation * (k - 1) - 1) // s + 1


def auto_padding(k: int, dilation: int = 1) -> int:
    return dilation * (k - 1) // 2


def _window_shape(spec: dict, shape):
    c, h, w = shape
    p = spec["p"] if spec.get("p") is not None else auto_padding(spec["k"], spec.get("dilation", 1))
    k, s, d = spec["k"], spec["s"], spec.get("dilation", 1)
    return spec["c"], out_size(h, k, s, p, d), out_size(w, k, s, p, d)


def _strided_shape(spec: dict, shape):
    c, h, w = shape
    s = spec["s"]
    return spec["c"], (h - 1) // s + 1, (w - 1) // s + 1


def _same_shape(spec: dict, shape):
    return spec["c"], shape[1], shape[2]


def _global_shape(spec: dict, shape):
    return spec["c"], 1, 1


def _flat_shape(spec: dict, shape):
    return shape[0] * shape[1] * shape[2], 1, 1


_C = Param("int", SAME)
_S = Param("int", 1)
_ACT = Param(ACTIVATIONS, "relu")

OPS: dict[str, OpSchema] = {}


def _op(name, doc, shape, strided=True, family="block", **params):
    OPS[name] = OpSchema(name, params, doc, shape, strided, family)


_op("conv", "k×k convolution + batch norm + activation (`preact: true` puts the activation first, as in NASNet/DARTS)",
    _window_shape, c=Param("int"), k=Param("int", 3), s=_S, p=Param("int0", None), groups=Param("int", 1),
    dilation=Param("int", 1), act=_ACT, bn=Param("bool", True), bias=Param("bool", False),
    preact=Param("bool", False))
_op("dwconv", "k×k depthwise convolution + batch norm + activation", _window_shape,
    c=_C, k=Param("int", 3), s=_S, p=Param("int0", None), dilation=Param("int", 1), act=_ACT)
_op("fac_conv", "ReLU, 1×k then k×1 convolution, batch norm (NASNet's factorized k×k)", _strided_shape,
    c=_C, k=Param("int", 7), s=_S)
_op("sep", "separable conv as in NASNet/DARTS: (ReLU, k×k depthwise, 1×1, BN) applied `repeat` times; "
    "`dilation: 2, repeat: 1` is DARTS's dil_conv", _strided_shape,
    c=_C, k=Param("int", 3), s=_S, dilation=Param("int", 1), repeat=Param("int", 2))
_op("avgpool", "k×k average pool (padding not counted)", _window_shape,
    c=_C, k=Param("int", 3), s=_S, p=Param("int0", None))
_op("maxpool", "k×k max pool", _window_shape, c=_C, k=Param("int", 3), s=_S, p=Param("int0", None))
_op("skip", "identity; when stride or width changes: 1×1 conv + BN + ReLU (`reduce: conv`, FBNet) or a "
    "factorized reduction (`reduce: factorized`, NASNet/DARTS)", _strided_shape,
    c=_C, s=_S, reduce=Param(("conv", "factorized"), "conv"))
_op("zero", "outputs zeros (DARTS's 'none'); strided and widened like its inputs require", _strided_shape,
    c=_C, s=_S)
_op("ir", "inverted residual / MBConv / FBNet block: 1×1 expand (group conv + shuffle when groups > 1), "
    "k×k depthwise, optional squeeze-excite, 1×1 project; residual when stride 1 and width unchanged",
    _strided_shape, c=Param("int"), k=Param("int", 3), e=Param("float", 1), s=_S, groups=Param("int", 1),
    se=Param("frac", 0.0), se_base=Param(("input", "expanded"), "input"), se_gate=Param(GATES, "sigmoid"),
    se_act=Param(ACTIVATIONS, None), se_divisor=Param("int", 1), act=_ACT,
    expand=Param(("auto", "always"), "auto"), residual=Param("bool", True))
_op("se", "squeeze-and-excitation: global pool, reduce to ratio·c, activation, expand, gate", _same_shape,
    strided=False, c=_C, ratio=Param("frac", 0.25), gate=Param(GATES, "sigmoid"), act=_ACT,
    divisor=Param("int", 1))
_op("classifier", "global average pool, dropout, linear layer to the number of classes", _global_shape,
    strided=False, family="head", c=Param("int"), dropout=Param("frac", 0.0), bias=Param("bool", True))


def op_names() -> list[str]:
    return sorted(OPS)
