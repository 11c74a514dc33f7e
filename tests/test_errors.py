"""Bad input gets one located line and exit 2 — a corpus of malformed files, a fuzzer, and bad CLI arguments."""
import os
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nas.cli import main
from nas.dsl import SpecError, loads
from rule_sites import DSL_CORPUS as CORPUS
from rule_sites import Site, expectation, raise_sites, site_of

FUZZ_EXAMPLES = int(os.environ.get("NAS_FUZZ_EXAMPLES", "300"))  # raise it for a longer hunt
LOCATED = re.compile(r"^error: (?P<file>[^:]+\.yaml):(?P<line>\d+):(?P<col>\d+): (?P<msg>.+)$")


def test_corpus_is_large_enough():
    assert len(CORPUS) >= 20


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_malformed_file_gets_one_located_line_and_exit_2(path, capsys):
    expect = expectation(path)
    fragment, line = expect.fragment, expect.line
    code = main(["show", str(path)])
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    match = LOCATED.match(lines[0])
    assert match, lines[0]
    assert fragment in match.group("msg"), lines[0]
    assert int(match.group("line")) == line, lines[0]
    assert expect.hint is None or expect.hint in match.group("msg"), lines[0]
    assert "Traceback" not in captured.err + captured.out


FBNET = (Path(__file__).parent.parent / "search_spaces" / "fbnet.yaml").read_text()
TOKENS = ["{", "}", "[", "]", ":", ",", "-", " ", "\n", "  ", "$tbs", "choice", "op", "ir", "c", "n", "s", "k",
          "0", "-1", "1e9", "3.5", "null", "true", "&a", "*a", "<<", "!!python/object:os.system", "'", '"', "#",
          "stages", "cells", "nodes", "layers", "blocks", "\t", "é", "🙂"]


RULE_SITES = raise_sites()
INTERNAL = re.compile(r"Traceback|object has no attribute|unhashable type|NoneType|not subscriptable|"
                      r"object is not|unsupported operand|KeyError|IndexError|list index|invalid literal for")


def _accepts_or_spec_error(text: str) -> bool:
    """Loading, resolving and planning either work or raise the one located user error — nothing else."""
    try:
        space = loads(text, "fuzz.yaml")
        space.resolve(space.sample(0)).plan()
    except SpecError as err:
        # the class of message a user error has: one line, located in the file, in our words (not a Python
        # exception's text leaking through a broad except)
        assert "\n" not in str(err)
        assert err.where and err.where.file == "fuzz.yaml" and err.message, str(err)
        assert not INTERNAL.search(err.message), str(err)
        # and raised by one of the validation rules (a `raise SpecError(...)` of nas/dsl or the recipe), not
        # by a wrapper that turns any exception into a SpecError
        assert isinstance(site_of(err, RULE_SITES), Site), (str(err), site_of(err, RULE_SITES))
    else:
        return True
    return False


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(TOKENS), max_size=40).map("".join))
def test_fuzz_token_soup(text):
    _accepts_or_spec_error(text)


def test_the_fuzzers_seed_is_accepted_and_a_known_break_is_refused():
    """A loader that refused everything would pass the fuzzers; this one must accept the unmutated seed."""
    assert _accepts_or_spec_error(FBNET) is True
    assert _accepts_or_spec_error(FBNET.replace("op: ir", "op: irr", 1)) is False


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzz_mutated_fbnet(data):
    lines = FBNET.splitlines()
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(lines) - 1))
        action = data.draw(st.sampled_from(["delete", "insert", "replace", "duplicate"]))
        if action == "delete":
            lines.pop(i)
        elif action == "duplicate":
            lines.insert(i, lines[i])
        else:
            line = lines[i]
            pos = data.draw(st.integers(0, len(line)))
            token = data.draw(st.sampled_from(TOKENS))
            end = pos + (data.draw(st.integers(0, 4)) if action == "replace" else 0)
            lines[i] = line[:pos] + token + line[end:]
        if not lines:
            break
    _accepts_or_spec_error("\n".join(lines))


@pytest.mark.parametrize("argv,fragment", [
    (["show"], "the following arguments are required"),
    (["count", "search_spaces/fbnet.yaml", "--sample", "x"], "--sample takes an integer"),
    (["count", "search_spaces/fbnet.yaml", "--input-size", "0"], "positive integer"),
    (["count", "search_spaces/efficientnet_b0.yaml", "--device", "tpu"], "unknown device"),
    (["count", "search_spaces/efficientnet_b0.yaml", "--latency", "--device", "cuda:7"], "not available"),
    (["count", "no/such/file.yaml"], "no such file"),
    (["show", "resnet9000"], "no file or zoo entry"),
    (["show", "search_spaces"], "is a directory"),
    (["count", "search_spaces/fbnet.yaml"], "pick one architecture with --sample"),
    (["nonsense"], "invalid choice"),
    (["show", "a\0b.yaml"], "argument 'a\\x00b.yaml' contains a NUL byte"),  # only in-process: argv cannot hold NUL
])
def test_bad_cli_arguments(argv, fragment, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1, err
    assert fragment in err
