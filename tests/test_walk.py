"""Space.walk: conditional choices (a depth pick removes later layers), resolve without inactive choices."""
import pytest

import nas.dsl as dsl
from nas.dsl.errors import SpecError
from nas.dsl.walk import active, enumerate_all, is_active

SPACE = dsl.loads("""
name: toy
input: {channels: 1, size: 8}
classes: 10
choices:
  ops: {a: {op: ir, k: 3, e: 1}, b: {op: ir, k: 5, e: 1}}
stem: [{op: conv, k: 3, c: 8, s: 1}]
stages:
  - {block: $ops, c: 8, n: {choice: [1, 2, 3]}, s: 1}
  - {op: ir, k: {choice: [3, 5]}, e: 1, c: {choice: [16, 24]}, n: 1, s: 2}
head: [{op: classifier}]
""")


def test_walk_skips_layers_beyond_the_depth_pick():
    asked = []

    def decide(name, choice):
        asked.append(name)
        return {"stages.0.n": "2"}.get(name, choice.keys[-1])

    picks = SPACE.walk(decide)
    assert asked == ["stages.0.n", "stages.0.layers.0", "stages.0.layers.1", "stages.1.c", "stages.1.layers.0.k"]
    assert picks == {"stages.0.n": "2", "stages.0.layers.0": "b", "stages.0.layers.1": "b", "stages.1.c": "24",
                     "stages.1.layers.0.k": "5"}


def test_resolve_accepts_an_assignment_without_inactive_choices():
    partial = {"stages.0.n": 1, "stages.0.layers.0": "a", "stages.1.c": 16, "stages.1.layers.0.k": 3}
    full = dict(partial, **{"stages.0.layers.1": "b", "stages.0.layers.2": "b"})
    assert dsl.dumps(SPACE.resolve(partial)) == dsl.dumps(SPACE.resolve(full))


def test_resolve_still_demands_active_choices():
    with pytest.raises(SpecError, match="open"):
        SPACE.resolve({"stages.0.n": 2, "stages.0.layers.0": "a", "stages.1.c": 16, "stages.1.layers.0.k": 3})


def test_enumeration_matches_size_and_has_no_duplicates():
    points = list(enumerate_all(SPACE))
    assert len(points) == SPACE.size() == (2 + 4 + 8) * 2 * 2
    assert len({tuple(sorted(p.items())) for p in points}) == len(points)
    assert len({dsl.dumps(SPACE.resolve(p)) for p in points}) == len(points)  # distinct architectures


def test_is_active_and_active():
    assert not is_active(SPACE, "stages.0.layers.2", {"stages.0.n": "2"})
    assert is_active(SPACE, "stages.0.layers.1", {"stages.0.n": "2"})
    full = {n: c.keys[0] for n, c in SPACE.choices().items()}
    assert set(active(SPACE, full)) == {"stages.0.n", "stages.0.layers.0", "stages.1.c", "stages.1.layers.0.k"}
