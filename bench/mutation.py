"""Mutation testing: plant small bugs in the core modules and count how many the targeted tests catch.

Each mutant changes one operator or constant in one module (`<` → `<=`, `+` → `-`, `and` → `or`, `n` → `n + 1`,
`True` → `False`, `not x` → `x`), in a scratch copy of the repository, and runs the tests that should notice it
(the fast tests first, then, for a mutant they miss, the slow ones of the same files; the first failure stops). A
mutant is *killed* when those tests fail (or time out), *survives* when they pass. Sites are sampled with a fixed seed, so two runs plant the same mutants.

    python bench/mutation.py                  # every target, the default sample per module
    python bench/mutation.py --per-module 4 --only nas/scaling.py
    python bench/mutation.py --list           # the mutants, without running anything
    python bench/mutation.py --jobs 1         # one mutant at a time (default: one per core, each its own copy)

Survivors that are *equivalent* (the mutated program behaves the same) are listed in EQUIVALENT with a reason and
left out of the score; every other survivor is a missing test.
"""
from __future__ import annotations

import argparse
import ast
import os
import queue
import random
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# module → the tests that should catch a bug in it
TARGETS = {
    "nas/cost/flops.py": ["tests/test_cost.py"],
    "nas/cost/lut.py": ["tests/test_cost.py", "tests/test_expected_cost.py"],  # expected.py reads its io keys
    "nas/scaling.py": ["tests/test_scaling.py"],
    "nas/dsl/transform.py": ["tests/test_scaling.py", "tests/test_dsl.py"],
    "nas/dsl/plan.py": ["tests/test_dsl.py", "tests/test_ops.py", "tests/test_rule_coverage.py", "tests/test_errors.py",
                        "tests/test_build.py"],
    "nas/dsl/resolve.py": ["tests/test_dsl.py", "tests/test_spaces.py", "tests/test_rule_coverage.py"],
    "nas/export/source.py": ["tests/test_export.py"],
    "nas/train.py": ["tests/test_train.py"],
    "nas/data.py": ["tests/test_data.py", "tests/test_invariants.py"],
    # the search half: strategies behind ask/tell, the results files, the supernet's mixed ops and derivation
    "nas/search/strategies/evolution.py": ["tests/test_strategies.py"],
    "nas/search/strategies/reinforce.py": ["tests/test_strategies.py"],
    "nas/search/strategies/grid.py": ["tests/test_strategies.py"],
    "nas/search/results.py": ["tests/test_results.py", "tests/test_search_resume.py"],
    "nas/supernet/mixed.py": ["tests/test_supernet.py"],
    "nas/supernet/expected.py": ["tests/test_expected_cost.py"],
    "nas/supernet/derive.py": ["tests/test_dnas.py", "tests/test_supernet.py"],
}
# (module, the mutated line's text, mutant description) → why the mutant cannot change behaviour
EQUIVALENT: dict[tuple[str, str, str], str] = {
    ("nas/scaling.py", "values = [round(1 + i * step, 10) for i in range(count_)]", "10 → 11"):
        "grid values have at most a few decimals: rounding to 10 or 11 places gives the same floats",
    ("nas/dsl/plan.py", "sizes = {states[s][1:] for s in concat}", "1 → 2"):
        "every state is square (inputs are S×S and every op keeps H = W), so comparing W compares (H, W)",
    ("nas/train.py", "x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)", "True → False"):
        "non_blocking only lets a host-to-GPU copy overlap; the values are the same",
    ("nas/train.py", "with torch.autocast(device.type, dtype=torch.bfloat16 if not cuda else torch.float16, "
                     "enabled=cuda):", "not x → x"):
        "autocast is enabled only on CUDA, so off CUDA (this suite) its dtype is never used",
    ("nas/cost/lut.py", "if name in self._choices and state in self._choices[name].values:", "In → NotIn"):
        "only which cell-input entries are filled when the table is built rather than on first use; every "
        "estimate is the same (test_cost checks estimates against fvcore)",
    ("nas/supernet/expected.py", "self.io_cost.append(0.0)  # no assignment reads exactly these inputs: probability 0",
     "0.0 → 1.0"): "reached only for read combinations of probability 0, so that cost is always weighed by 0",
    ("nas/supernet/expected.py", 'cells = [SimpleNamespace(reads={s for s, on in zip(("h0", "h1"), flags[k]) if on}, '
                                 'live=True)', "True → False"):
        "_mark_live sets every cell's `live` before it reads it",
    ("nas/data.py", "while chunk := response.read(1 << 20):", "1 → 2"):
        "the download is read in 2 MiB chunks instead of 1 MiB: the same bytes reach the file",
    ("nas/search/results.py", "return json.dumps(_finite(obj), sort_keys=True, allow_nan=False)", "False → True"):
        "_finite has already replaced every non-finite float by None, so there is no NaN left to allow",
    ("nas/search/results.py", 'sign = -1.0 if objective.direction == "max" else 1.0', "1.0 → 2.0"):
        "a positive factor on the sort key keeps the order, ties included",
    ("nas/supernet/derive.py", "if zero and len(zero) < len(choice):", "And → Or"):
        "differs only for a choice whose options are all `zero` ops: any of them derives a node of the same zeros",
    ("nas/supernet/derive.py", "if zero and len(zero) < len(choice):", "Lt → LtE"):
        "differs only for a choice whose options are all `zero` ops: any of them derives a node of the same zeros",
    ("nas/cost/flops.py", "flops, params = _unit_cost_cached(json.dumps(spec, sort_keys=True), tuple(in_shape))",
     "True → False"):
        "only the cache key's spelling: an op spelled in another key order is counted again, to the same count",
    ("nas/cost/flops.py", "table[name] = Cost(float(per_module.get(name, 0)), param_count(named[name]))", "0 → 1"):
        "fvcore's by_module() lists every submodule, an uncalled one at 0, so the default is never taken",
    ("nas/cost/lut.py", 'for t, state in ((0, "h0"), (1, "h1")):', "0 → 1"):
        "only which cell-input entries are filled when the table is built rather than on first use; every "
        "estimate is the same (test_cost checks estimates against fvcore)",
    ("nas/cost/lut.py", "for _ in range(prefill if any(t.key is not None for t in self.terms) else 0):", "IsNot → Is"):
        "prefill only warms the table with sampled entries; a missing entry is computed on first use, to the same "
        "cost",
    ("nas/dsl/transform.py", "return fn(value) if isinstance(value, int) and not isinstance(value, bool) else value",
     "And → Or"):
        "validation makes every width and depth reaching it an int (bools refused), so the non-int branch is "
        "defensive",
    ("nas/dsl/plan.py", "elif h0[1] != h1[1]:", "1 → 2"):
        "every state is square (inputs are S×S and every op keeps H = W), so comparing W compares H",
    ("nas/dsl/plan.py", "if not _one_reduction_apart(h0[1], h1[1]):", "1 → 2"):
        "every state is square (inputs are S×S and every op keeps H = W), so comparing W compares H",
    ("nas/export/source.py", "if name in _library()[1] or name in _RESERVED:", "1 → 2"):
        "_library()'s second and third items are dicts keyed by the same definition names",
    ("nas/export/source.py", "if name not in constants or ast.literal_eval(node.value) != constants[name]:",
     "Or → And"):
        "a self-check of the generator's own constants: it raises only if the generator writes a wrong value"
}

_SWAPS = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
          ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is,
          ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Div,
          ast.Pow: ast.Mult, ast.And: ast.Or, ast.Or: ast.And}


@dataclass(frozen=True)
class Mutant:
    module: str
    index: int  # position of the mutated node in ast.walk order of the module's source at the start of the run
    line: int
    description: str
    text: str  # the mutated line, stripped (how EQUIVALENT names a mutant, robust to edits elsewhere)

    @property
    def key(self) -> tuple[str, str, str]:
        return self.module, self.text, self.description


def _skipped_nodes(tree: ast.AST) -> set[int]:
    """Nodes a mutation would not exercise: docstrings, annotations, decorators."""
    skipped: set[int] = set()

    def mark(node):
        skipped.update(id(n) for n in ast.walk(node))

    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                mark(body[0])
            for dec in getattr(node, "decorator_list", []):
                mark(dec)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for arg in node.args.args + node.args.kwonlyargs + node.args.posonlyargs:
                if arg.annotation:
                    mark(arg.annotation)
            if node.returns:
                mark(node.returns)
        if isinstance(node, ast.AnnAssign):
            mark(node.annotation)
    return skipped


def _describe(node: ast.AST) -> str | None:
    """What mutating `node` would do, or None when it is not a mutation site."""
    name = lambda op: type(op).__name__  # noqa: E731
    if isinstance(node, ast.Compare) and type(node.ops[0]) in _SWAPS:
        return f"{name(node.ops[0])} → {_SWAPS[type(node.ops[0])].__name__}"
    if isinstance(node, (ast.BinOp, ast.BoolOp)) and type(node.op) in _SWAPS:
        return f"{name(node.op)} → {_SWAPS[type(node.op)].__name__}"
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return "not x → x"
    if isinstance(node, ast.Constant) and isinstance(node.value, bool):
        return f"{node.value} → {not node.value}"
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return f"{node.value!r} → {node.value + 1!r}"
    return None


def mutants(module: str, source: str) -> list[Mutant]:
    tree = ast.parse(source)
    lines = source.splitlines()
    skipped = _skipped_nodes(tree)
    found = []
    for index, node in enumerate(ast.walk(tree)):
        if id(node) in skipped:
            continue
        description = _describe(node)
        if description:
            line = getattr(node, "lineno", 0)
            found.append(Mutant(module, index, line, description, lines[line - 1].strip() if line else ""))
    return found


def mutated_source(mutant: Mutant, source: str) -> str:
    """`source` (the module as the mutants were planned on) with the mutant planted."""
    tree = ast.parse(source)
    node = list(ast.walk(tree))[mutant.index]
    if isinstance(node, ast.Compare):
        node.ops[0] = _SWAPS[type(node.ops[0])]()
    elif isinstance(node, (ast.BinOp, ast.BoolOp)):
        node.op = _SWAPS[type(node.op)]()
    elif isinstance(node, ast.UnaryOp):
        for parent in ast.walk(tree):
            for field, value in ast.iter_fields(parent):
                if value is node:
                    setattr(parent, field, node.operand)
                elif isinstance(value, list) and any(v is node for v in value):
                    setattr(parent, field, [node.operand if v is node else v for v in value])
    elif isinstance(node.value, bool):
        node.value = not node.value
    else:
        node.value = node.value + 1
    return ast.unparse(tree)


def run_mutant(mutant: Mutant, scratch: Path, timeout: float) -> tuple[str, float]:
    """'killed', 'survived' or 'timeout' (counted as killed), and the seconds it took."""
    target = scratch / mutant.module
    original = target.read_text(encoding="utf-8")  # the scratch copy: the checkout may be edited meanwhile
    target.write_text(mutated_source(mutant, original), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(scratch), "RAY_USAGE_STATS_ENABLED": "0", "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    try:
        tests = [t for t in TARGETS[mutant.module] if (scratch / t).exists()]  # a missing file must not "kill"

        def passes(tier: str) -> bool:  # exit 5: these files have no test of this tier
            left = timeout - (time.perf_counter() - start)
            if left <= 0:
                raise subprocess.TimeoutExpired("pytest", timeout)
            proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-m", tier, "-p", "no:cacheprovider",
                                   *tests], cwd=scratch, env=env, capture_output=True, timeout=left)
            return proc.returncode in (0, 5)

        # the fast tier kills most mutants in seconds; only what it misses pays for the slow tier
        verdict = "survived" if passes("not slow") and passes("slow") else "killed"
    except subprocess.TimeoutExpired:
        verdict = "timeout"
    finally:
        target.write_text(original, encoding="utf-8")
    return verdict, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-module", type=int, default=7, help="mutants sampled per module (default 7)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", action="append", default=None, help="a module of TARGETS (repeatable)")
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds per mutant's tests")
    parser.add_argument("--list", action="store_true", help="print the sampled mutants and stop")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="mutants tested at once, each in its own scratch copy (default: one per core)")
    args = parser.parse_args()
    modules = args.only or list(TARGETS)
    unknown = [m for m in modules if m not in TARGETS]
    if unknown:
        parser.error(f"not a target: {unknown[0]} (targets: {', '.join(TARGETS)})")
    plan = []
    for module in modules:
        rng = random.Random(f"{args.seed}:{module}")  # per module, so --only plants the same mutants as a full run
        sites = mutants(module, (ROOT / module).read_text(encoding="utf-8"))
        plan += sorted(rng.sample(sites, min(args.per_module, len(sites))), key=lambda m: m.index)
    if args.list:
        for m in plan:
            print(f"{m.module}:{m.line}  {m.description}")
        return 0
    results: list[tuple[Mutant, str]] = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="nas-mutation-") as tmp:
        # one scratch copy per job: a mutant is planted in its copy's file, so two jobs must never share one
        copies: queue.Queue[Path] = queue.Queue()
        for j in range(max(1, args.jobs)):
            scratch = Path(tmp) / f"repo{j}"
            shutil.copytree(ROOT, scratch, ignore=shutil.ignore_patterns(".git", ".venv", "runs", "__pycache__",
                                                                         ".pytest_cache", ".hypothesis"))
            copies.put(scratch)

        def run(mutant: Mutant) -> tuple[Mutant, str, float]:
            scratch = copies.get()
            try:
                return (mutant, *run_mutant(mutant, scratch, args.timeout))
            finally:
                copies.put(scratch)

        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            for i, (mutant, verdict, seconds) in enumerate(pool.map(run, plan), 1):
                results.append((mutant, verdict))
                print(f"[{i}/{len(plan)}] {verdict:8s} {seconds:5.1f}s  {mutant.module}:{mutant.line}  "
                      f"{mutant.description}", flush=True)
    equivalent = [(m, v) for m, v in results if v == "survived" and m.key in EQUIVALENT]
    scored = [(m, v) for m, v in results if (m, v) not in equivalent]
    killed = sum(v != "survived" for _, v in scored)
    print(f"\nkilled {killed} of {len(scored)} non-equivalent mutants ({100 * killed / max(1, len(scored)):.0f}%); "
          f"{len(equivalent)} equivalent left out; {time.perf_counter() - start:.0f} s with {args.jobs} job(s)")
    for m, _ in equivalent:
        print(f"  equivalent {m.module}:{m.line}  {m.description} — {EQUIVALENT[m.key]}")
    for m, v in scored:
        if v == "survived":
            print(f"  survived {m.module}:{m.line}  {m.description}    | {m.key[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
