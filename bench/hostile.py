"""Counts of the hostile-input corpus (tests/hostile_corpus.py) against a checkout: how each input ended.

Every case runs in a forked child with a memory cap and a time limit; the table gives, per class, the inputs
tried and how many got the one-line error, succeeded as they should, printed a traceback, hung, ran out of
memory, printed more than one line, or gave a silently wrong result. Compare two checkouts:
  .venv/bin/python bench/hostile.py                      # this checkout
  .venv/bin/python bench/hostile.py --root /tmp/before   # another (e.g. `git archive main | tar -x -C ...`)
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
VERDICTS = ("error", "ok", "traceback", "noisy", "hang", "memory", "wrong", "setup-failed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(HERE), help="checkout whose `nas` is tested (default this one)")
    parser.add_argument("--kind", default=None, help="only this class: resources, runs, data, resume, odd")
    parser.add_argument("--case", default=None, help="only cases whose name contains this")
    parser.add_argument("--mem-mb", type=int, default=1024, help="memory cap per case beyond the parent's")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds before a case counts as a hang")
    parser.add_argument("--names", default=None, help="only these cases (comma-separated names)")
    parser.add_argument("--json", default=None, metavar="FILE", help="also write every outcome to FILE")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every case's stderr tail")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(args.root).resolve()))
    sys.path.insert(1, str(HERE / "tests"))
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import torch  # imported once here, so each forked case costs milliseconds

    torch.set_num_threads(1)
    import torch._dynamo  # noqa: F401 - torch.optim imports it on first use: 1.5 s in every child that trains
    import nas.cli  # noqa: F401
    import nas.data  # noqa: F401
    import nas.export  # noqa: F401
    import nas.train  # noqa: F401
    from hostile_corpus import CASES, run_case

    assert Path(nas.cli.__file__).resolve().is_relative_to(Path(args.root).resolve()), nas.cli.__file__
    names = set(args.names.split(",")) if args.names else None
    cases = [c for c in CASES if (args.kind is None or c.kind == args.kind) and (args.case or "") in c.name
             and (names is None or c.name in names)]
    table: dict[str, Counter] = {}
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="nas-hostile-") as tmp:
        for i, case in enumerate(cases):
            outcome = run_case(case, Path(tmp) / f"{i:03d}-{case.name}", args.mem_mb, args.timeout)
            outcomes.append(dataclasses.asdict(outcome))
            table.setdefault(case.kind, Counter())[outcome.verdict] += 1
            last = outcome.stderr.strip().splitlines()[-1:] or [""]
            flag = "" if outcome.verdict in ("error", "ok") else "  <--"
            print(f"{outcome.verdict:>12} {outcome.seconds:6.1f}s {outcome.extra_mb:7.0f}MB  {case.kind:9} "
                  f"{case.name:32} {last[0][:110]}{flag}", flush=True)
            if args.verbose and outcome.verdict not in ("error", "ok"):
                print("    " + "\n    ".join(outcome.stderr.strip().splitlines()[-6:]))
    if args.json:
        Path(args.json).write_text(json.dumps(outcomes, indent=1))
    total = Counter()
    print(f"\n{'class':10}{'tried':>6}" + "".join(f"{v:>13}" for v in VERDICTS))
    for kind, counts in table.items():
        total.update(counts)
        print(f"{kind:10}{sum(counts.values()):>6}" + "".join(f"{counts[v]:>13}" for v in VERDICTS))
    print(f"{'total':10}{sum(total.values()):>6}" + "".join(f"{total[v]:>13}" for v in VERDICTS))


if __name__ == "__main__":
    main()
