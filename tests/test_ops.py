"""Every op: the torch module's output shape equals the shape the DSL infers, at stride 1 and 2."""
import inspect

import pytest
import torch

from nas import ops
from nas.dsl.ops import OPS, REQUIRED
from nas.dsl.plan import make_unit

# Settings that exercise each op's interesting path; ops not listed get their required ints set to 8.
EXAMPLES = {
    "conv": [{"k": 3, "c": 12}, {"k": 1, "c": 16, "groups": 4}, {"k": 3, "c": 8, "dilation": 2, "preact": True},
             {"k": 5, "c": 8, "p": 0}],
    "dwconv": [{"k": 3}, {"k": 5, "act": "hardswish"}],
    "fac_conv": [{"k": 7}, {"k": 3, "c": 16}],
    "sep": [{"k": 3}, {"k": 5, "c": 16}, {"k": 3, "dilation": 2, "repeat": 1}],
    "avgpool": [{"k": 3}, {"k": 5}],
    "maxpool": [{"k": 3}, {"k": 7}, {"k": 3, "p": 0, "ceil": True}, {"k": 2, "p": 0, "ceil": True}],
    "skip": [{}, {"c": 16}, {"c": 16, "reduce": "factorized"}],
    "zero": [{}, {"c": 16}],
    "ir": [{"c": 8, "e": 6}, {"c": 16, "k": 5, "e": 3, "se": 0.25, "act": "swish"},
           {"c": 8, "e": 1, "groups": 2, "expand": "always"},
           {"c": 8, "e": 4, "se": 0.25, "se_base": "expanded", "se_gate": "hsigmoid", "se_divisor": 8,
            "act": "hardswish"}],
    "se": [{"ratio": 0.25}, {"gate": "hsigmoid", "divisor": 8}],
    "classifier": [{"c": 10, "dropout": 0.2}, {"c": 10, "norm": "layernorm"}],
    "basic": [{"c": 8}, {"c": 16}, {"c": 16, "preact": True, "dropout": 0.1}],
    "bottleneck": [{"c": 16}, {"c": 32, "e": 0.5, "groups": 4, "se": 0.0625}],
    "dense": [{"units": 2, "growth": 4, "c": 16}],
    "transition": [{"c": 4}],
    "fire": [{"squeeze": 4, "c": 16}],
    "inception": [{"b1": 4, "b2r": 4, "b2": 4, "b3r": 2, "b3": 4, "b4": 4, "c": 16}],
    "shuffle": [{"c": 8}],
    "convnext": [{}, {"layer_scale": 0.0, "e": 2}],
    "ln_conv": [{"c": 16, "k": 2}, {"c": 16, "k": 4, "order": "post"}],
    "dwsep": [{"c": 16}],
    "pool": [{}],
    "norm": [{}, {"act": "none"}],
    "inception3": [{"kind": "a", "pool_features": 8, "c": 232}, {"kind": "b", "c": 488}, {"kind": "c", "c7": 8, "c": 768},
                   {"kind": "d", "c": 520}, {"kind": "e", "c": 2048}],
    "sepconv": [{"c": 16}],
    "xception": [{"c": 16}, {"c": 8, "reps": 3}, {"c": 16, "start_relu": False, "grow_first": False}],
    "linear": [{"c": 10, "dropout": 0.5}, {"c": 6, "dropout_first": True, "act": "none"}],
}


def _examples():
    for name, schema in OPS.items():
        settings = EXAMPLES.get(name) or [{k: 8 for k, p in schema.params.items()
                                           if p.default is REQUIRED and p.kind == "int"}]
        for i, extra in enumerate(settings):
            strides = (1, 2) if schema.strided else (1,)
            for s in strides:
                yield pytest.param(name, extra, s, id=f"{name}-{i}-s{s}")


def test_registry_matches_the_dsl_vocabulary():
    assert set(ops.REGISTRY) == set(OPS)


@pytest.mark.parametrize("name", sorted(OPS))
def test_every_schema_parameter_is_a_constructor_argument(name):
    accepted = inspect.signature(ops.REGISTRY[name].__init__).parameters
    missing = [p for p in OPS[name].params if p not in accepted]
    assert not missing, f"{name}: constructor ignores {missing}"
    assert "c_in" in accepted


@pytest.mark.parametrize("name,extra,stride", list(_examples()))
def test_op_output_shape_matches_plan(name, extra, stride):
    spec = {"op": name, **extra}
    if OPS[name].strided:
        spec["s"] = stride
    in_shape = (8, 9, 9)  # odd, so padding and stride rounding are exercised
    unit = make_unit("x", spec, in_shape)
    module = ops.make(unit.spec).eval()
    with torch.no_grad():
        out = module(torch.randn(2, *in_shape))
    expected = unit.out_shape if name != "classifier" else (unit.out_shape[0],)
    if name == "linear":
        assert unit.spec["c_in"] == 8 * 9 * 9  # a linear layer reads its input flattened
    assert tuple(out.shape[1:]) == tuple(expected)


def test_inverted_residual_structure():
    block = ops.make(make_unit("x", {"op": "ir", "c": 8, "e": 1}, (8, 8, 8)).spec)
    assert block.expand is None and block.has_residual  # e=1 skips the expand conv (MobileNetV2/EfficientNet)
    fb = ops.make(make_unit("x", {"op": "ir", "c": 8, "e": 1, "expand": "always", "groups": 2}, (8, 8, 8)).spec)
    assert fb.expand is not None and fb.expand.conv.groups == 2  # FBNet keeps it, as a group conv
    strided = ops.make(make_unit("x", {"op": "ir", "c": 8, "e": 6, "s": 2}, (8, 8, 8)).spec)
    assert not strided.has_residual
    se = ops.make(make_unit("x", {"op": "ir", "c": 16, "e": 6, "se": 0.25}, (16, 8, 8)).spec)
    assert se.se.reduce.out_channels == 4  # SE squeezes relative to the block input (EfficientNet)


def test_drop_path_only_in_training_and_rescales_the_kept_branches():
    block = ops.make(make_unit("x", {"op": "ir", "c": 8, "e": 2}, (8, 4, 4)).spec)
    x = torch.randn(64, 8, 4, 4)
    with torch.no_grad():
        block.eval()
        plain_eval = block(x)
        block.drop_path_rate = 0.5
        assert torch.equal(block(x), plain_eval)  # eval: the rate changes nothing
        block.train()  # BN uses batch statistics: the branch is the same whatever is dropped afterwards
        block.drop_path_rate = 0.0
        branch = block(x) - x
        block.drop_path_rate = 0.5
        torch.manual_seed(0)
        out = block(x)
    dropped = (out - x).flatten(1).abs().sum(1) == 0
    assert 0 < int(dropped.sum()) < 64  # seed 0 drops some samples and keeps others
    assert torch.equal(out[dropped], x[dropped])
    torch.testing.assert_close(out[~dropped], x[~dropped] + branch[~dropped] / 0.5)


def test_zero_is_all_zeros_of_the_output_shape_and_stride_1_skip_is_identity():
    zero = ops.make(make_unit("x", {"op": "zero", "s": 2, "c": 4}, (8, 5, 5)).spec)
    zeros = zero(torch.randn(1, 8, 5, 5))
    assert zeros.shape == (1, 4, 3, 3) and torch.count_nonzero(zeros) == 0
    skip = ops.make(make_unit("x", {"op": "skip"}, (8, 5, 5)).spec)
    x = torch.randn(1, 8, 5, 5)
    assert torch.equal(skip(x), x)


def test_factorized_reduce_sees_even_and_odd_pixels():
    """Two stride-2 1×1 convs over relu(x): one at the even pixels, one shifted to the odd ones (zero past the
    edge), concatenated and batch-normalized; recomputed here by indexing, with BN at its initial statistics."""
    skip = ops.make(make_unit("x", {"op": "skip", "s": 2, "reduce": "factorized"}, (8, 5, 5)).spec).eval()
    reduce = skip.path
    x = torch.randn(2, 8, 5, 5)
    r = torch.relu(x)
    odd = torch.zeros(2, 8, 3, 3)
    odd[:, :, :2, :2] = r[:, :, 1::2, 1::2]
    w_a, w_b = reduce.conv_a.weight[:, :, 0, 0], reduce.conv_b.weight[:, :, 0, 0]
    expected = torch.cat([torch.einsum("oc,nchw->nohw", w_a, r[:, :, ::2, ::2]),
                          torch.einsum("oc,nchw->nohw", w_b, odd)], dim=1) / (1 + reduce.bn.eps) ** 0.5
    with torch.no_grad():
        out = skip(x)
    assert out.shape == (2, 8, 3, 3)
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("op", ["maxpool", "avgpool", "conv"])
@pytest.mark.parametrize("k", [2, 3, 4, 5])
def test_default_padding_is_the_planned_one_for_even_and_odd_kernels(op, k):
    """Window ops pad as the DSL plans (`same_padding` = `auto_padding`): a 2×2 pool without `p` once
    planned 4×4 from 8×8 and built 5×5."""
    spec = {"op": op, "k": k, "s": 2, **({"c": 4} if op == "conv" else {})}
    unit = make_unit("x", spec, (4, 8, 8))
    with torch.no_grad():
        out = ops.make(unit.spec).eval()(torch.randn(1, 4, 8, 8))
    assert tuple(out.shape[1:]) == unit.out_shape


def test_one_width_rounding_rule_for_dsl_ops_and_export():
    """The DSL's width transform, the squeeze-excite width and the exported model.py round with one rule,
    divisors ≤ 1 included (they truncate, never below 1)."""
    from nas.dsl import transform
    from nas.dsl.rounding import round_channels
    from nas.export.source import _library
    from nas.ops.mobile import SqueezeExcite

    assert transform.round_channels is round_channels
    exported: dict = {}
    exec(_library()[2]["round_channels"], exported)  # the definition model.py carries
    for divisor in range(-1, 17):
        for value in [0.2, 0.5, 0.99, 1.5, 4.5, 7.49, 17.9, 18.45, 35.2, 1408.0] + [c * 0.37 for c in range(1, 400, 9)]:
            assert exported["round_channels"](value, divisor) == round_channels(value, divisor), (value, divisor)
        for c_in in range(1, 120, 13):
            for ratio in (0.0625, 0.25, 1 / 3, 0.5):
                se = SqueezeExcite(c_in, ratio=ratio, divisor=divisor)
                assert se.reduce.out_channels == round_channels(c_in * ratio, divisor), (c_in, ratio, divisor)
    assert round_channels(4.9, 1) == 4 and round_channels(0.3, 0) == 1 and round_channels(11, 8) == 16
