"""CLI fuzzer: random argument values for every subcommand end in exit 0, or exit 2 with one line on stderr.

Values come from a pool of hostile and ordinary ones (huge, negative, NaN, empty, paths that are files,
folders, pipes, devices). Anything else — a traceback, another exit code, a second stderr line — fails.
"""
import contextlib
import io
import os
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hostile_corpus import TINY
from nas.cli import build_parser, main
from test_errors import INTERNAL

EXAMPLES = int(os.environ.get("NAS_CLI_FUZZ_EXAMPLES", "40"))
VALUES = ["0", "1", "2", "-1", "1e300", "-1e300", "nan", "inf", "", "abc", "99999999999999999999", "0.5",
          "tiny.yaml", "missing.yaml", "afile", "adir", "pipe", "/dev/null", "/dev/zero", "out", "afile/sub",
          "fbnet", "tiny", "py,yaml", "onnx,exe", "cpu", "\x00", "--", "-o", "é🙂", "../../etc"]
SKIP = {"-h", "--help", "--version", "--latency", "--table"}  # help exits 0 trivially; the others are long work


def _options() -> dict[str, list]:
    """Each subcommand's (and zoo show's) flags and whether each takes a value, read from the parser."""
    parser = build_parser()
    commands = {}

    def walk(prefix, sub):
        for action in sub._actions:
            if action.__class__.__name__ == "_SubParsersAction":
                for name, child in action.choices.items():
                    walk(prefix + [name], child)
        flags = [(a.option_strings[-1], a.nargs != 0) for a in sub._actions
                 if a.option_strings and not set(a.option_strings) & SKIP]
        positionals = [a for a in sub._actions if not a.option_strings
                       and a.__class__.__name__ != "_SubParsersAction"]
        if prefix and prefix != ["zoo"]:  # plain `nas zoo` counts the whole zoo: long work, like --table
            commands[" ".join(prefix)] = (flags, len(positionals))

    walk([], parser)
    return commands


COMMANDS = _options()


def _fill(root: Path) -> Path:
    """The files the value pool names: a tiny architecture, a file, a folder, a named pipe."""
    (root / "tiny.yaml").write_text(TINY)
    (root / "afile").write_text("not yaml: [")
    (root / "adir").mkdir()
    os.mkfifo(root / "pipe")
    return root


@contextlib.contextmanager
def _playground():
    """A fresh folder per hypothesis example, as the working directory (a pytest fixture would be shared by
    all examples: one example's `-o out` would leave an `out` that changes what the next one meets)."""
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="fuzz") as folder:
        os.chdir(_fill(Path(folder)))
        try:
            yield
        finally:
            os.chdir(cwd)


def test_the_playground_is_usable(capsys):
    """Positive control: a loader that refused everything would pass the fuzzer's exit-2 branch."""
    with _playground():
        assert main(["show", "tiny.yaml"]) == 0
        assert main(["count", "tiny.yaml", "--json"]) == 0
    assert '"params"' in capsys.readouterr().out


def test_every_subcommand_is_fuzzed():
    assert {"show", "count", "scale", "train", "eval", "export", "zoo show"} <= set(COMMANDS)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_random_arguments_give_exit_0_or_one_line(data):
    with _playground():
        _fuzz_once(data)


def _fuzz_once(data):
    command = data.draw(st.sampled_from(sorted(COMMANDS)), label="command")
    flags, positionals = COMMANDS[command]
    argv = command.split() + [data.draw(st.sampled_from(VALUES)) for _ in range(positionals)]
    chosen = data.draw(st.lists(st.sampled_from(flags), max_size=4, unique=True), label="flags") if flags else []
    for flag, takes_value in chosen:
        argv += [flag, data.draw(st.sampled_from(VALUES))] if takes_value else [flag]
    if command == "train":
        argv += ["--epochs", "1", "--size", "8", "--quiet"]  # argparse still checks every fuzzed value; last wins
    if command == "lut":  # timing a whole space at 224² is long work; the fuzzed values are still parsed
        argv += ["--input-size", "32", "--repeats", "1", "--warmup", "0", "--copies", "1"]
    if os.environ.get("NAS_CLI_FUZZ_LOG"):
        print(argv, file=sys.__stderr__, flush=True)
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code = main(argv)
        except SystemExit as exc:  # only --help/--version would; they are not drawn
            code = exc.code
    lines = err.getvalue().strip().splitlines()
    assert code in (0, 2), (argv, err.getvalue()[-2000:])
    if code == 2:
        assert len(lines) == 1 and lines[0].startswith("error: "), (argv, err.getvalue()[-2000:])
        assert not INTERNAL.search(lines[0]), (argv, lines[0])  # a user error in our words, not Python's
