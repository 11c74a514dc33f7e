"""bench/mutation.py stays honest: its targets exist, every mutant it calls equivalent names a line that is still in
the code (an entry that rots would quietly excuse a new survivor), and a planted mutant really changes the module."""
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import mutation  # noqa: E402


def test_targets_and_their_tests_exist():
    for module, tests in mutation.TARGETS.items():
        assert (ROOT / module).is_file(), module
        assert tests and all((ROOT / t).is_file() for t in tests), (module, tests)


def test_every_equivalent_mutant_is_one_the_script_plants():
    planted = {m.key for module in mutation.TARGETS
               for m in mutation.mutants(module, (ROOT / module).read_text(encoding="utf-8"))}
    stale = [key for key in mutation.EQUIVALENT if key not in planted]
    assert not stale, f"EQUIVALENT names mutants the script no longer plants: {stale}"
    assert all(reason.strip() for reason in mutation.EQUIVALENT.values())


def test_a_planted_mutant_changes_exactly_its_operator():
    module = "nas/scaling.py"
    source = (ROOT / module).read_text(encoding="utf-8")
    sites = mutation.mutants(module, source)
    swap = next(m for m in sites if m.description == "GtE → Gt")
    mutated = mutation.mutated_source(swap, source)
    assert ast.dump(ast.parse(mutated)) != ast.dump(ast.parse(source))
    assert ast.unparse(ast.parse(mutated)).count(">=") == ast.unparse(ast.parse(source)).count(">=") - 1
