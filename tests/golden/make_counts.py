"""Regenerate tests/golden/counts.json: exact params and FLOPs of every zoo entry and of every shipped space's
representative (each choice at its first option), under the FLOPs convention of nas/cost/flops.py.

    PYTHONPATH=. python tests/golden/make_counts.py

Run it only when a count is meant to change, and review the diff: tests/test_golden.py holds the code to this file,
so a change here is a change of what the toolkit counts. The comparison with published figures is a separate table
(each zoo file's `reference:`, checked with its tolerance by tests/test_zoo.py).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


def representative(space):
    """The architecture a space validates its shapes with: every choice at its first option."""
    return space.resolve({name: choice.keys[0] for name, choice in space.choices().items()})


def main() -> int:
    import nas
    from nas import zoo
    from nas.cost import count_arch

    torch.set_num_threads(1)
    table = {"zoo": {}, "spaces": {}}
    for name in zoo.architectures():
        cost = count_arch(zoo.load(name)).total
        table["zoo"][name] = {"params": cost.params, "flops": int(cost.flops)}
        print(name, table["zoo"][name], flush=True)
    for path in sorted(zoo.spaces_dir().glob("*.yaml")):
        space = nas.load(path)
        if not space.choices():
            continue  # a fixed file is a zoo entry, counted above
        cost = count_arch(representative(space)).total
        table["spaces"][path.stem] = {"params": cost.params, "flops": int(cost.flops)}
        print(path.stem, table["spaces"][path.stem], flush=True)
    (HERE / "counts.json").write_text(json.dumps(table, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
