"""Exact counts: the params and FLOPs (multiply-adds of convs, linear layers and matmuls — nas/cost/flops.py) of
every zoo entry and of every shipped space's representative, pinned to tests/golden/counts.json (regenerate with
tests/golden/make_counts.py only when a count is meant to change). The published figures are another table (the
zoo files' `reference:`, held to a tolerance by test_zoo.py); here no tolerance hides a convention bug.

The FLOPs are also recomputed without fvcore: the multiply-adds of every Conv2d and Linear from the shapes a
forward pass sees (k_h·k_w·c_in/groups·c_out·H_out·W_out, in·out), so the count is what the convention says and
nothing else (a norm, a pool or an activation that started to count would break the equality)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

import nas
from nas import zoo
from nas.cost import count_arch, count_model
from test_zoo import SLOW

GOLDEN = json.loads((Path(__file__).parent / "golden" / "counts.json").read_text(encoding="utf-8"))
SPACES = Path(__file__).resolve().parent.parent / "search_spaces"


def representative(space):
    return space.resolve({name: choice.keys[0] for name, choice in space.choices().items()})


def _slow_if_heavy(names):
    return [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in names]


def test_the_golden_table_covers_every_entry_and_space():
    assert set(GOLDEN["zoo"]) == set(zoo.architectures())
    assert set(GOLDEN["spaces"]) == {p.stem for p in SPACES.glob("*.yaml") if nas.load(p).choices()}


@pytest.mark.parametrize("name", sorted(GOLDEN["zoo"]))
def test_zoo_params_exactly(name):
    with torch.device("meta"):  # no weights allocated: every entry, fast
        params = sum(p.numel() for p in nas.build(zoo.load(name)).parameters())
    assert params == GOLDEN["zoo"][name]["params"]


@pytest.mark.parametrize("name", _slow_if_heavy(sorted(GOLDEN["zoo"])))
def test_zoo_flops_exactly(name, zoo_counts):
    _, _, cost = zoo_counts[name]
    assert (cost.params, int(cost.flops)) == (GOLDEN["zoo"][name]["params"], GOLDEN["zoo"][name]["flops"])
    assert cost.flops == int(cost.flops)  # multiply-adds are whole numbers


@pytest.mark.parametrize("name", sorted(GOLDEN["spaces"]))
def test_space_representative_exactly(name):
    cost = count_arch(representative(nas.load(SPACES / f"{name}.yaml"))).total
    assert (cost.params, cost.flops) == (GOLDEN["spaces"][name]["params"], GOLDEN["spaces"][name]["flops"])


def _hand_count(model: nn.Module, input_shape) -> int:
    """Multiply-adds of every Conv2d and Linear from the shapes of one forward pass, by the formula."""
    total = 0

    def conv(module, inputs, output):
        nonlocal total
        k_h, k_w = module.kernel_size
        total += k_h * k_w * (module.in_channels // module.groups) * output.shape[1:].numel()

    def linear(module, inputs, output):
        nonlocal total
        total += module.in_features * output.numel() // output.shape[0]

    hooks = [m.register_forward_hook(conv if isinstance(m, nn.Conv2d) else linear)
             for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model.eval()(torch.zeros(1, *input_shape))
    for hook in hooks:
        hook.remove()
    return total


# SE + hardswish, pooling branches, dense concatenation, channel shuffle, LayerNorm + GELU, cells with pooling ops
BY_HAND = [("mobilenetv3_large", None), ("googlenet", None), ("densenet121", 64), ("shufflenetv2", None),
           ("convnext_t", 64), pytest.param("nasnet_a_mobile", 64, marks=pytest.mark.slow),  # NASNet: seconds
           ("squeezenet1_1", None), ("efficientnet_b0", None)]


@pytest.mark.parametrize("name,size", BY_HAND)
def test_fvcore_count_is_exactly_the_conv_and_linear_multiply_adds(name, size, zoo_counts):
    arch = zoo.load(name)
    if size is not None:
        arch = arch.with_input(size=size)
    model = nas.build(arch, seed=0)
    expected = _hand_count(model, arch.plan().input_shape)
    if size is None:  # fvcore's count at the native size is the session's, made once for the goldens above
        assert zoo_counts[name][2].flops == expected == GOLDEN["zoo"][name]["flops"]
    else:  # counted on the very network the formula saw
        assert count_model(model, arch.plan().input_shape).total.flops == expected
