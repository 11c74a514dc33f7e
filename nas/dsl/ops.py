"""The op vocabulary as pure data: each op's parameters, their types and defaults, and its output shape.

`nas/ops/` implements every op named here in torch; a test checks that the two lists agree. Keeping the
schema here lets the DSL validate a file and infer every shape without importing torch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

ACTIVATIONS = ("relu", "relu6", "swish", "hardswish", "gelu", "sigmoid", "hsigmoid", "none")
GATES = ("sigmoid", "hsigmoid")

# How a width multiplier (`with_width`, `nas scale --width`) applies to a layer's free width `c`, set per
# layer with `width:` beside the op's parameters: `scale` (the default) always; `grow` only when the multiplier
# is above 1, so the layer never narrows (MobileNetV2 keeps its last 1×1 conv at 1280 below width 1.0);
# `fixed` never. It is a layer setting, not an op parameter: the op's module never sees it.
WIDTH_RULES = ("scale", "grow", "fixed")
LAYER_KEYS = {"width": WIDTH_RULES}

# Which parameters `nas show` prints beside each layer, in this order: those marked True whenever the op has
# them (they set its shape), the others only when set to something other than "off" (see `shown_params`).
SHOWN_PARAMS = {"k": True, "e": True, "s": True, "groups": False, "se": False, "act": False, "dilation": False,
                "repeat": False, "reduce": False}
_OFF = (None, 0, 0.0, 1, "none", False)


def shown_params(spec: dict) -> list[tuple[str, Any]]:
    """The (name, value) pairs of a complete op spec that a one-line summary of the layer shows."""
    return [(k, spec[k]) for k, always in SHOWN_PARAMS.items() if k in spec and (always or spec[k] not in _OFF)]


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
    flattens: bool = False  # reads its input flattened: its c_in is channels × height × width
    keeps_width: bool = False  # its output has its input's width: `c` may only repeat it
    out_width: Callable[[dict], int] | None = None  # its output width from its other parameters
    width_scaled: bool = False  # `c` is a free width that width multipliers scale


def out_size(size: int, k: int, s: int, p: int, dilation: int = 1) -> int:
    """Spatial size after a k×k window with stride s and padding p (PyTorch's floor rule)."""
    return (size + 2 * p - dilation * (k - 1) - 1) // s + 1


def auto_padding(k: int, dilation: int = 1) -> int:
    return dilation * (k - 1) // 2


def _window_shape(spec: dict, shape):
    c, h, w = shape
    p = spec["p"] if spec.get("p") is not None else auto_padding(spec["k"], spec.get("dilation", 1))
    k, s, d = spec["k"], spec["s"], spec.get("dilation", 1)
    if spec.get("ceil"):
        return spec["c"], ceil_out_size(h, k, s, p), ceil_out_size(w, k, s, p)
    return spec["c"], out_size(h, k, s, p, d), out_size(w, k, s, p, d)


def ceil_out_size(size: int, k: int, s: int, p: int) -> int:
    """PyTorch's ceil_mode pooling size: rounded up, but a window may not start in the right padding."""
    out = -(-(size + 2 * p - k) // s) + 1
    return out - 1 if (out - 1) * s >= size + p else out


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


def _op(name, doc, shape, strided=True, family="block", flattens=False, keeps_width=False, out_width=None,
        width_scaled=False, **params):
    OPS[name] = OpSchema(name, params, doc, shape, strided, family, flattens, keeps_width, out_width, width_scaled)


_op("conv", "k×k convolution + batch norm + activation (`preact: true` puts the activation first, as in NASNet/DARTS)",
    _window_shape, c=Param("int"), k=Param("int", 3), s=_S, p=Param("int0", None), groups=Param("int", 1),
    dilation=Param("int", 1), act=_ACT, bn=Param("bool", True), bias=Param("bool", False),
    preact=Param("bool", False), affine=Param("bool", True), width_scaled=True)
_op("dwconv", "k×k depthwise convolution + batch norm + activation", _window_shape,
    c=_C, k=Param("int", 3), s=_S, p=Param("int0", None), dilation=Param("int", 1), act=_ACT, keeps_width=True)
_op("fac_conv", "ReLU, 1×k then k×1 convolution, batch norm (NASNet's factorized k×k)", _strided_shape,
    c=_C, k=Param("int", 7), s=_S, affine=Param("bool", True), width_scaled=True)
_op("sep", "separable conv as in NASNet/DARTS: (ReLU, k×k depthwise, 1×1, BN) applied `repeat` times; "
    "`dilation: 2, repeat: 1` is DARTS's dil_conv", _strided_shape,
    c=_C, k=Param("int", 3), s=_S, dilation=Param("int", 1), repeat=Param("int", 2), affine=Param("bool", True),
    width_scaled=True)
_op("avgpool", "k×k average pool (padding not counted)", _window_shape,
    c=_C, k=Param("int", 3), s=_S, p=Param("int0", None), keeps_width=True)
_op("maxpool", "k×k max pool (`ceil: true` rounds the output size up, as Caffe-era nets do)", _window_shape,
    c=_C, k=Param("int", 3), s=_S, p=Param("int0", None), ceil=Param("bool", False), keeps_width=True)
_op("skip", "identity; when stride or width changes: 1×1 conv + BN + ReLU (`reduce: conv`, FBNet) or a "
    "factorized reduction (`reduce: factorized`, NASNet/DARTS)", _strided_shape,
    c=_C, s=_S, reduce=Param(("conv", "factorized"), "conv"), affine=Param("bool", True), width_scaled=True)
_op("zero", "outputs zeros (DARTS's 'none'); strided and widened like its inputs require", _strided_shape,
    c=_C, s=_S, width_scaled=True)
_op("ir", "inverted residual / MBConv / FBNet block: 1×1 expand (group conv + shuffle when groups > 1), "
    "k×k depthwise, optional squeeze-excite, 1×1 project; residual when stride 1 and width unchanged",
    _strided_shape, c=Param("int"), k=Param("int", 3), e=Param("float", 1), s=_S, groups=Param("int", 1),
    se=Param("frac", 0.0), se_base=Param(("input", "expanded"), "input"), se_gate=Param(GATES, "sigmoid"),
    se_act=Param(ACTIVATIONS, None), se_divisor=Param("int", 1), act=_ACT,
    expand=Param(("auto", "always"), "auto"), residual=Param("bool", True), width_scaled=True)
_op("se", "squeeze-and-excitation: global pool, reduce to ratio·c, activation, expand, gate", _same_shape,
    strided=False, c=_C, ratio=Param("frac", 0.25), gate=Param(GATES, "sigmoid"), act=_ACT,
    divisor=Param("int", 1), keeps_width=True)
_op("classifier", "global average pool, dropout, linear layer to the number of classes", _global_shape,
    strided=False, family="head", c=Param("int"), dropout=Param("frac", 0.0), bias=Param("bool", True),
    norm=Param(("none", "layernorm"), "none"), linear=Param("bool", True))
_op("norm", "batch norm + activation (the final BN-ReLU of pre-activation nets and DenseNet)", _same_shape,
    strided=False, c=_C, act=_ACT, keeps_width=True)


def _pooled_shape(spec: dict, shape):
    """A k×k window with stride s and no padding (DenseNet's transition pool, ConvNeXt's patchify conv)."""
    c, h, w = shape
    k = spec.get("k", spec["s"])
    return spec["c"], (h - k) // spec["s"] + 1, (w - k) // spec["s"] + 1


# -- classic CNN blocks (nas/ops/classic.py) ----------------------------------------------------------------
_op("basic", "ResNet basic block: two 3×3 convs (stride on the first) + shortcut; `preact` for WRN",
    _strided_shape, c=Param("int"), s=_S, preact=Param("bool", False), dropout=Param("frac", 0.0))
_op("bottleneck", "ResNet bottleneck: 1×1 to e·c, 3×3 (`groups` for ResNeXt), 1×1 to c, optional SE "
    "(`se` × c), + shortcut; the stride sits on the 3×3 (v1.5, default) or the first 1×1 (`stride_on: 1x1`, v1)",
    _strided_shape, c=Param("int"), s=_S, e=Param("float", 0.25), groups=Param("int", 1), se=Param("frac", 0.0),
    stride_on=Param(("3x3", "1x1"), "3x3"))
_op("dense", "DenseNet dense block: `units` × (BN-ReLU-1×1, BN-ReLU-3×3 to `growth`), concatenated; "
    "c = c_in + units·growth", _same_shape, strided=False, c=Param("int"), units=Param("int", 6),
    growth=Param("int", 32), bn_size=Param("int", 4),
    out_width=lambda spec: spec["c_in"] + spec["units"] * spec["growth"])
_op("transition", "DenseNet transition: BN-ReLU-1×1 conv to c, 2×2 average pool with stride 2",
    _pooled_shape, c=Param("int"), s=Param("int", 2))
_op("fire", "SqueezeNet fire module: 1×1 squeeze, 1×1 and 3×3 expand (c/2 each), concatenated",
    _same_shape, strided=False, c=Param("int"), squeeze=Param("int", 16))
_op("inception", "GoogLeNet Inception module: 1×1 | 1×1→3×3 | 1×1→k3×k3 | pool→1×1; c = b1+b2+b3+b4",
    _same_shape, strided=False, c=Param("int"), b1=Param("int", 64), b2r=Param("int", 96), b2=Param("int", 128),
    b3r=Param("int", 16), b3=Param("int", 32), b4=Param("int", 32), k3=Param("int", 5),
    out_width=lambda spec: spec["b1"] + spec["b2"] + spec["b3"] + spec["b4"])
_op("shuffle", "ShuffleNetV2 unit: channel split (stride 1) or two strided paths, concatenated and shuffled",
    _strided_shape, c=Param("int"), s=_S)
_op("convnext", "ConvNeXt block: 7×7 depthwise, LayerNorm, 1×1 to e·c, GELU, 1×1 back, layer scale, residual",
    _same_shape, strided=False, c=_C, k=Param("int", 7), e=Param("float", 4), layer_scale=Param("float0", 1e-6),
    keeps_width=True)
_op("ln_conv", "k×k strided conv with a channel LayerNorm before (`order: pre`) or after (`post`) it",
    _pooled_shape, c=Param("int"), k=Param("int", 2), s=Param("int", 2), order=Param(("pre", "post"), "pre"),
    width_scaled=True)
_op("dwsep", "depthwise-separable conv (MobileNet v1): k×k depthwise + BN + act, 1×1 + BN + act",
    _strided_shape, c=Param("int"), k=Param("int", 3), s=_S, act=_ACT)
_op("pool", "global average pool to 1×1", _global_shape, strided=False, c=_C, keeps_width=True)
_op("linear", "flatten, fully connected layer to c, activation, dropout (`dropout_first` for AlexNet)",
    _global_shape, strided=False, flattens=True, c=Param("int"), act=_ACT, dropout=Param("frac", 0.0),
    dropout_first=Param("bool", False))


def op_names() -> list[str]:
    return sorted(OPS)



def _inception3_width(spec: dict) -> int:
    """The concatenated branch widths of each Inception-v3 module kind (the grid reductions add their input)."""
    return {"a": 224 + spec.get("pool_features", 0), "b": 480 + spec["c_in"], "c": 768, "d": 512 + spec["c_in"],
            "e": 2048}[spec["kind"]]


def _inception3_shape(spec: dict, shape):
    c, h, w = shape
    if spec["kind"] in ("b", "d"):  # grid reductions: stride-2 3×3 windows without padding
        return spec["c"], (h - 3) // 2 + 1, (w - 3) // 2 + 1
    return spec["c"], h, w


_op("inception3", "Inception-v3 module by `kind`: a (pool_features), b (grid reduction), c (7×7 factorized, "
    "width c7), d (grid reduction), e (expanded filter banks)", _inception3_shape, strided=False,
    c=Param("int"), kind=Param(("a", "b", "c", "d", "e"), "a"), pool_features=Param("int", 32), c7=Param("int", 128),
    out_width=_inception3_width)
_op("sepconv", "Xception's separable conv: k×k depthwise, 1×1 pointwise, BN, activation", _strided_shape,
    c=Param("int"), k=Param("int", 3), s=_S, act=_ACT)
_op("xception", "Xception block: reps × (ReLU, separable 3×3, BN), stride-2 max pool when strided, + 1×1 shortcut",
    _strided_shape, c=Param("int"), s=_S, reps=Param("int", 2), start_relu=Param("bool", True),
    grow_first=Param("bool", True))


def _keep_shape(spec: dict, shape):
    """An op that changes neither width nor size (a bare activation; `keeps_width` has the planner check `c`)."""
    return tuple(shape)


_op("act", "activation alone, no parameters (NASNet's ReLU after the last cell)", _keep_shape, strided=False,
    c=_C, act=_ACT, keeps_width=True)
