"""From learned logits to architectures: the argmax, samples from the distribution, DARTS's top-2 edges."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from nas.dsl.nodes import Choice


def argmax_assignment(net) -> dict[str, str]:
    """The most likely option of every choice; with DARTS edges, each node keeps its two strongest edges."""
    if net.parametrization == "edges":
        return _edges_to_slots(net, _edge_strengths(net), sample=None)
    assignment = net.arch.argmax()
    for name, choice in net.space.choices().items():  # as DARTS: a cell's `zero` op is never derived
        zero = [k for k, v in choice.values.items() if isinstance(v, dict) and v.get("op") == "zero"]
        if zero and len(zero) < len(choice):
            logits = net.arch[name].detach().clone()
            logits[[choice.keys.index(k) for k in zero]] = -float("inf")
            assignment[name] = choice.keys[int(logits.argmax())]
    return assignment


def sample_assignments(net, k: int, generator: torch.Generator) -> list[dict[str, str]]:
    """k architectures drawn from the learned distribution (FBNet samples several and retrains them)."""
    if net.parametrization == "edges":
        return [_edges_to_slots(net, _edge_strengths(net), sample=generator) for _ in range(k)]
    return [net.arch.draw(generator) for _ in range(k)]


def _edge_strengths(net) -> dict[tuple[str, int, str], tuple[torch.Tensor, list[str]]]:
    """Per (cell type, node, source): the softmax over the edge's non-zero ops, and those ops' keys."""
    from nas.supernet.cells import edge_name

    out = {}
    cells = net.net
    for cname in cells.cell_specs:
        k = cells.kinds.index(cname)
        for j, node in enumerate(cells.body[k].nodes):
            for source in node.sources:
                keys = list(node.op_keys[source])
                probs = F.softmax(net.arch[edge_name(cname, j, source)].detach(), -1)
                kept = [i for i, o in enumerate(keys) if o not in node.zero_ops]
                out[(cname, j, source)] = (probs[kept], [keys[i] for i in kept])
    return out


def _edges_to_slots(net, strengths, sample: torch.Generator | None) -> dict[str, str]:
    """DARTS's derivation written as the space's slots: node j's slot t reads the t-th strongest edge
    (strength = its strongest non-zero op) with that op; sampling draws the edges without replacement
    in proportion to their strength, and each edge's op from its non-zero ops."""
    assignment = {}
    cells = net.net
    for cname, spec in cells.cell_specs.items():
        for j, node in enumerate(spec["nodes"]):
            count = sum(1 for key in node if key.startswith("op"))
            sources = [s for (c, jj, s) in strengths if c == cname and jj == j]
            best = torch.stack([strengths[(cname, j, s)][0].max() for s in sources])
            if sample is None:
                order = best.argsort(descending=True).tolist()
            else:
                order = torch.multinomial(best, len(sources), replacement=False, generator=sample).tolist()
            for t in range(count):
                source = sources[order[t % len(order)]]
                probs, keys = strengths[(cname, j, source)]
                i = int(probs.argmax()) if sample is None else int(torch.multinomial(probs, 1, generator=sample))
                for slot_key, value in ((f"in{t}", source), (f"op{t}", keys[i])):
                    if isinstance(node[slot_key], Choice):
                        assignment[node[slot_key].name] = value
    return assignment
