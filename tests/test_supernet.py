"""Supernet: mixed ops compute what they claim, single_path runs one candidate, weights map onto derived nets."""
from __future__ import annotations

import pytest
import torch

import nas.dsl as dsl
from nas.builder import build
from nas.dsl.errors import SpecError
from nas.supernet import Supernet
from nas.supernet.cells import CellNode
from nas.supernet.mixed import MixedOp
from nas.supernet.names import combo_label, escape, unescape

TINY_MNAS = """
name: tiny_mnas
input: {channels: 3, size: 16}
classes: 4
stem: [{op: conv, k: 3, c: 8, s: 2}]
stages:
  - {op: ir, shared: true, k: {choice: [3, 5]}, e: {choice: [3, 6]}, c: {choice: [8, 12, 16]}, n: {choice: [1, 2, 3]}, s: 2}
  - {op: ir, shared: true, k: {choice: [3, 5]}, e: {choice: [1, 3]}, c: {choice: [16, 24]}, n: {choice: [1, 2]}, s: 1}
head: [{op: conv, k: 1, c: 32}, {op: classifier}]
"""

TINY_DARTS = """
name: tiny_darts
input: {channels: 3, size: 16}
classes: 4
choices:
  ops:
    none: {op: zero}
    max_pool_3x3: {op: maxpool, k: 3}
    skip_connect: {op: skip, reduce: factorized}
    sep_conv_3x3: {op: sep, k: 3}
    dil_conv_3x3: {op: sep, k: 3, dilation: 2, repeat: 1}
stem: [{op: conv, k: 3, c: 12, s: 1, act: none}]
cells:
  normal: {nodes: 3, inputs: 2, ops: $ops, concat: nodes}
  reduction: {nodes: 3, inputs: 2, ops: $ops, concat: nodes, reduce: true}
body: {pattern: [normal, reduction, normal], F: 4}
head: [{op: classifier}]
"""

TINY_NASNET = """
name: tiny_nasnet
input: {channels: 3, size: 16}
classes: 4
choices:
  ops:
    identity: {op: skip, reduce: factorized}
    sep3: {op: sep, k: 3}
    avg3: {op: avgpool, k: 3}
    fac3: {op: fac_conv, k: 3}
stem: [{op: conv, k: 3, c: 8, s: 1, act: none}]
cells:
  normal: {nodes: 3, inputs: 2, ops: $ops, concat: unused}
  reduction: {nodes: 3, inputs: 2, ops: $ops, concat: unused, reduce: true}
body: {pattern: [normal, reduction, normal], F: 4}
head: [{op: classifier}]
"""


@pytest.fixture(scope="module")
def fbnet():
    return dsl.load("search_spaces/fbnet.yaml").with_input(size=32).with_classes(10).with_width(0.25)


@pytest.fixture(scope="module")
def darts():
    return dsl.loads(TINY_DARTS)


@pytest.fixture(scope="module")
def tiny_nasnet():
    return dsl.loads(TINY_NASNET)


def test_escaping_is_reversible_and_makes_valid_names():
    for name in ["stages.1.layers.0", "0.25", "a%2Eb", "h0", "k3_e6"]:
        assert "." not in escape(name)
        assert unescape(escape(name)) == name
    assert combo_label(("3", "0.25")) == "3,0%2E25"
    torch.nn.ParameterDict({escape("cells.normal.nodes.0.op0"): torch.nn.Parameter(torch.zeros(2))})


def test_a_space_without_choices_has_nothing_to_search():
    arch = dsl.load("search_spaces/zoo/fbnet_a.yaml")
    with pytest.raises(SpecError, match="no choices"):
        Supernet(arch)


def test_mixture_is_the_weighted_sum_of_the_candidates(fbnet):
    torch.manual_seed(0)
    net = Supernet(fbnet, mode="mixture")
    net.temperature = 5.0
    op: MixedOp = net.net.stages[1].layers[1]
    assert op.deps == ("stages.1.layers.1",) and len(op.candidates) == 9
    x = torch.randn(2, op.in_widths[(0,)], 16, 16)
    sample = net.draw()
    w = sample.weights["stages.1.layers.1"]
    assert torch.allclose(w.sum(), torch.tensor(1.0)) and (w > 0).all()
    keys = fbnet.choices()["stages.1.layers.1"].keys
    expected = sum(w[i] * op.candidates[escape(k)](x) for i, k in enumerate(keys))
    assert torch.allclose(op(x, sample), expected, atol=1e-6)


def _count_calls(modules: dict[str, torch.nn.Module]) -> dict[str, int]:
    counts = dict.fromkeys(modules, 0)
    for name, module in modules.items():
        module.register_forward_hook(lambda *_, n=name: counts.__setitem__(n, counts[n] + 1))
    return counts


def test_single_path_runs_only_the_sampled_candidate_and_theta_gets_a_gradient(fbnet):
    torch.manual_seed(1)
    net = Supernet(fbnet, mode="single_path")
    mixed = {p: m for p, m in net.net.named_modules() if isinstance(m, MixedOp)}
    candidates = {f"{p}.{label}": c for p, m in mixed.items() for label, c in m.candidates.items()}
    counts = _count_calls(candidates)
    sample = net.draw()
    net(torch.randn(2, 3, 32, 32), sample).logsumexp(1).sum().backward()
    for path, m in mixed.items():
        picked = m.labels[tuple(sample.index[d] for d in m.deps)]
        ran = [label for label in m.candidates if counts[f"{path}.{label}"]]
        assert ran == [picked], path
    assert sum(counts.values()) == len(mixed)
    # Every logit is reached through the straight-through weight. (A layer whose output only feeds a
    # conv + BN is scale-invariant downstream, so its CE gradient vanishes; the cost term still reaches it.)
    grads = [net.arch[name].grad for name in net.arch.names()]
    assert all(g is not None for g in grads)
    assert sum(int(g.abs().sum() > 1e-6) for g in grads) >= len(grads) // 2


def test_mixture_node_of_a_cell_is_the_darts_edge_sum(darts):
    torch.manual_seed(2)
    net = Supernet(darts, mode="softmax", cells="edges")
    node: CellNode = net.net.body[0].nodes[1]
    states = {s: torch.randn(2, 4, 8, 8) for s in ("h0", "h1", "n0")}
    sample = net.draw()
    with torch.no_grad():
        for name in net.arch.names():
            net.arch[name].normal_()
        sample = net.draw()
        expected = 0
        for source in ("h0", "h1", "n0"):
            w = torch.softmax(net.arch[f"cells.normal.nodes.1.edges.{source}"], -1)
            for i, op in enumerate(node.op_keys[source]):
                expected = expected + w[i] * node.edge(source, op)(states[source])
        got = net.net._node("normal", 1, node, states, sample)
    assert torch.allclose(got, expected, atol=1e-5)


def test_slots_induce_the_edge_weights(darts):
    """Σ_t p(in_t = s)·p(op_t = o) per edge: the slots' relaxation is a DARTS node."""
    torch.manual_seed(3)
    net = Supernet(darts, mode="mixture")
    net.temperature = 2.0
    node: CellNode = net.net.body[0].nodes[1]
    states = {s: torch.randn(2, 4, 8, 8) for s in ("h0", "h1", "n0")}
    with torch.no_grad():
        sample = net.draw()
        expected = 0
        for source in ("h0", "h1", "n0"):
            for op in node.op_keys[source]:
                w = sum(sample.weights[f"cells.normal.nodes.1.in{t}"][["h0", "h1", "n0"].index(source)]
                        * sample.weights[f"cells.normal.nodes.1.op{t}"][list(node.op_keys[source]).index(op)]
                        for t in (0, 1))
                expected = expected + w * node.edge(source, op)(states[source])
        got = net.net._node("normal", 1, node, states, sample)
    assert torch.allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize("cells", ["slots", "edges"])
def test_single_path_on_cells_runs_one_op_per_slot_or_edge(darts, cells):
    torch.manual_seed(4)
    net = Supernet(darts, mode="single_path", cells=cells)
    cell = net.net.body[0]
    edges = {f"{j}.{s}.{o}": node.edge(s, o) for j, node in enumerate(cell.nodes)
             for s in node.sources for o in node.op_keys[s]}
    counts = _count_calls(edges)
    sample = net.draw()
    net(torch.randn(2, 3, 16, 16), sample).logsumexp(1).sum().backward()
    for j, node in enumerate(cell.nodes):
        ran = {key for key, n in counts.items() if n and key.startswith(f"{j}.")}
        if cells == "slots":
            picked = {f"{j}.{node.slots[t].source.keys[sample.index[node.slots[t].source.name]]}."
                      f"{node.slots[t].op.keys[sample.index[node.slots[t].op.name]]}" for t in (0, 1)}
            assert ran == picked
        else:
            assert len(ran) == len(node.sources)  # GDAS: one op per edge
    grads = [net.arch[n].grad for n in net.arch.names() if n.startswith("cells.normal")]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)


def _check_inheritance(space, net: Supernet, seeds=range(3), atol=1e-5):
    x = torch.randn(2, space.doc["input"]["channels"], space.doc["input"]["size"], space.doc["input"]["size"])
    net.eval()
    for seed in seeds:
        assignment = space.sample(seed)
        model = build(space.resolve(assignment))
        state = net.inherited_state(assignment)
        assert set(state) == set(model.state_dict())
        model.load_state_dict(state)
        model.eval()
        with torch.no_grad():
            assert torch.allclose(model(x), net(x, net.fixed(assignment)), atol=atol), seed


def test_inheritance_block_space(fbnet):
    _check_inheritance(fbnet, Supernet(fbnet), seeds=[0, 1])


def test_inheritance_with_width_and_depth_choices():
    space = dsl.loads(TINY_MNAS)
    net = Supernet(space)
    layer = net.net.stages[0].layers[2]  # beyond the shortest depth: gated
    assert layer.depth is not None and layer.depth[0] == "stages.0.n"
    first = net.net.stages[1].layers[0]  # reads the previous stage's width choice
    assert "stages.0.c" in first.deps and set(first.in_widths.values()) == {8, 12, 16}
    _check_inheritance(space, net, seeds=range(6))


def test_inheritance_per_layer_parameter_choices():
    space = dsl.load("search_spaces/mobilenetv3.yaml").with_input(size=32).with_classes(10).with_width(0.25)
    _check_inheritance(space, Supernet(space), seeds=[0])


def test_inheritance_darts_cells_without_affine_norms(darts):
    net = Supernet(darts, affine=False)
    assert not any(m.affine for m in net.net.body.modules() if isinstance(m, torch.nn.BatchNorm2d))
    _check_inheritance(darts, net, seeds=[0, 1])


def test_inheritance_masked_unused_concat(tiny_nasnet):
    net = Supernet(tiny_nasnet)
    assert net.net.body[0].pre1 is not None
    _check_inheritance(tiny_nasnet, net, seeds=range(6))


def test_input_options_not_named_by_their_states_are_refused():
    """Edges are keyed by state: `{older: h0}` must fail at construction with a located error, not in forward."""
    space = dsl.loads(TINY_DARTS.replace("  ops:\n", "  older_or_prev: {older: h0, prev: h1}\n  ops:\n").replace(
        "  normal: {nodes: 3, inputs: 2, ops: $ops, concat: nodes}",
        "  normal: {nodes: [{op0: $ops, in0: $older_or_prev}, {op0: $ops, in0: n0}], concat: nodes}"))
    assert dict(space.choices()["cells.normal.nodes.0.in0"].values) == {"older": "h0", "prev": "h1"}
    with pytest.raises(SpecError, match=r"input choice 'cells.normal.nodes.0.in0' names state 'h0' 'older'") as err:
        Supernet(space)
    assert err.value.hint == "list the states themselves: in0: {choice: [h0, h1]}"
    assert str(err.value).startswith("<string>:")  # located in the space file
    assert Supernet(dsl.loads(TINY_DARTS)).net.parametrization == "slots"  # states as keys: accepted


def test_narrower_candidates_are_zero_padded_to_the_widest_width():
    """Width choices mix candidates of different widths: a narrower output keeps its channels first and is padded
    with zero channels up to the widest, whatever its spatial size (here equal to, then unlike, the width)."""
    from nas.supernet.mixed import _fit

    for shape in ((2, 3, 8, 8), (2, 3, 4, 4)):
        y = torch.randn(shape)
        out = _fit(y, 8)
        assert out.shape == (2, 8, *shape[2:])
        assert torch.equal(out[:, :3], y) and not out[:, 3:].any()
    full = torch.randn(2, 8, 5, 5)
    assert _fit(full, 8) is full
