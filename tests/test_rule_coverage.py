"""Every validation rule has its own malformed file.

Each file of tests/malformed/ (spaces, as `nas show` reads them) and tests/malformed_recipes/ (recipes, as
`nas search` reads them before it makes a run folder) is loaded in-process; the SpecError it raises is traced to
its `raise` statement. Every `raise SpecError(...)` of the rule modules must be the site of at least one file
(or be listed in ALLOWED_UNCOVERED with the reason), and each file's expected fragment must quote the message of
the site that fired — so a rule that changes its meaning, or a file that trips another rule first, fails here
even when some message still contains the fragment. (tests/test_errors.py and tests/test_recipe.py run the same
files through the CLI: one located line, exit 2.) Rules only the Python API, CLI arguments or the environment can
reach are run as API cases below and checked the same way.

A new rule needs one of: a file `NN_rule_name.yaml` in either corpus, starting `# expect: FRAGMENT @ LINE` (then
`# hint: TEXT` when the hint matters), FRAGMENT quoting the new message; an API case; or an ALLOWED_UNCOVERED
entry with its reason. A failure prints which site each file hit.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from nas.dsl.errors import SpecError
from rule_sites import (CODE, DSL_CORPUS, RECIPE_CORPUS, ROOT, Site, expectation, quotes_the_site, raise_sites,
                        shown, site_of)


# Rules no file reaches: only the Python API, the CLI's arguments or the environment feed them. Each is run here
# like a corpus file (its site and fragment checked the same way); the test named beside it checks the CLI side.
def _fbnet():
    from nas.dsl import load

    return load(ROOT / "search_spaces" / "fbnet.yaml")


def _zoo(name: str):
    from nas import zoo

    return zoo.load(name)


def _file(tmp: Path, name: str, content: bytes | None = None) -> Path:
    path = tmp / name
    if content is not None:
        path.write_bytes(content)
    return path


def _budget(env: dict):
    from unittest import mock

    from nas.budget import check_budget

    with mock.patch.dict("os.environ", env):
        check_budget(_zoo("resnet18").plan(), "resnet18")


def _scale(**kw):
    from nas import scaling

    base = kw.pop("base", None) or _zoo("mobilenetv2")
    return getattr(scaling, kw.pop("call"))(base, *kw.pop("args"))


def _api_cases(tmp: Path) -> dict[str, tuple]:
    """name → (what to call, expected fragment)."""
    from nas.dsl import load, loads
    from nas.dsl.walk import active
    from nas.recipe import apply_override
    from nas.scaling import Multipliers, coefficient_grid, multipliers

    space = _fbnet()
    picks = space.sample(0)
    return {
        "option_key": (lambda: space.resolve({**picks, "stages.0.layers.0": "k9"}),
                       "'k9' is not an option of choice 'stages.0.layers.0'"),
        # test_errors: nas count SPACE without --sample
        "require_fixed": (lambda: space.require_fixed(), "'fbnet' is a search space with 22 choices"),
        "unknown_choice_name": (lambda: space.resolve({**picks, "stages.9.c": 1}), "'stages.9.c' is not a choice of"),
        "choices_left_open": (lambda: space.resolve({}), "the assignment leaves 22 choice(s) open"),
        "walk_left_open": (lambda: active(space, {}), "the assignment leaves the active choice"),
        "with_classes": (lambda: space.with_classes(0), "classes must be a positive integer, got 0"),
        "with_input": (lambda: space.with_input(size=-1), "input size must be a positive integer"),
        "with_width": (lambda: space.with_width(0), "width multiplier must be > 0, got 0"),
        "with_depth": (lambda: space.with_depth(-1), "depth multiplier must be > 0, got -1"),
        "with_dropout": (lambda: _scale_dropout(space), "dropout must be in [0, 1), got 1.5"),
        "with_name": (lambda: _rename(space), "a name must be a non-empty string"),
        "text_too_long": (lambda: loads("#" * (2 * 2**20 + 1)), "the text is too long"),
        # test_errors: the CLI refuses the argument before any path is read
        "nul_in_path": (lambda: load(tmp / "a\0b.yaml"), "not a valid path (it holds a NUL byte)"),
        "too_many_aliases": (lambda: loads("a: &a 1\nb: [" + ", ".join(["*a"] * 1001) + "]\n"),
                             "more than 1000 aliases"),
        "too_many_values": (lambda: loads("a: [" + "0, " * 20001 + "]\n"), "more than 20000 values"),
        "directory": (lambda: _load(tmp), "is a directory, expected a YAML file"),  # test_errors: nas show DIR
        "not_a_regular_file": (lambda: _load(Path("/dev/null")), "not a regular file"),  # test_limits
        "file_too_large": (lambda: _load(_file(tmp, "big.yaml", b"#" * (2 * 2**20 + 1))), "file too large ("),
        "no_such_file": (lambda: _load(tmp / "missing.yaml"), "no such file"),  # test_errors: nas count
        "write_onto_a_folder": (lambda: _write(tmp), "not a regular file: refusing to replace it"),
        "write_under_a_file": (lambda: _write(_file(tmp, "f.txt", b"") / "x.yaml"), "cannot write: "),
        "recipe_directory": (lambda: _recipe(tmp), "is a directory, expected a recipe YAML file"),  # test_recipe
        "override_without_value": (lambda: apply_override({}, "budget.trials"), "--set expects key.path=value"),
        "override_key_path": (lambda: apply_override({}, "budget..trials=3"), "bad key path 'budget..trials'"),
        "budget_env_not_a_number": (lambda: _budget({"NAS_MAX_PARAMS": "lots"}), "expected a number, got 'lots'"),
        "budget_env_not_positive": (lambda: _budget({"NAS_MAX_PARAMS": "-1"}), "expected a positive number, got '-1'"),
        "budget_activations": (lambda: _budget({"NAS_MAX_ACTIVATION_MB": "1"}), "of activations for one 3×224×224"),
        "budget_parameters": (lambda: _budget({"NAS_MAX_PARAMS": "1e6"}), "has 11,689,512 parameters"),  # test_limits
        "scale_coefficient": (lambda: _scale(call="coefficients", args=(0.5,)), "alpha must be ≥ 1, got 0.5"),
        "scale_phi": (lambda: multipliers(-1, 1.2, 1.1, 1.15), "φ must be ≥ 0, got -1"),  # test_scaling
        "scale_overflow": (lambda: multipliers(1e300, 1.2, 1.1, 1.15), "overflows α^φ"),  # test_limits
        "scale_cell_network": (lambda: _scale(call="check_base", args=(), base=_zoo("nasnet_a_mobile")),
                               "has no stages to scale (a cell network)"),  # test_scaling
        "scale_multiplier_positive": (lambda: _scale(call="apply", args=(Multipliers(0.0, 1.0, 1.0),)),
                                      "depth multiplier must be > 0, got 0"),  # test_scaling
        "scale_multiplier_limit": (lambda: _scale(call="apply", args=(Multipliers(1.0, 1e3, 1.0),)),
                                   "width multiplier is 1000, above the limit of 100"),  # test_limits
        "scale_official": (lambda: _scale(call="official", args=(9,)), "--official takes an integer φ from 0 to 7"),
        "coefficient_grid": (lambda: coefficient_grid(0, 0, 1), "the coefficient grid needs step > 0"),  # test_scaling
    }


def _scale_dropout(space):
    from nas.dsl.transform import with_dropout

    return with_dropout(space, 1.5)


def _rename(space):
    from nas.dsl.transform import with_name

    return with_name(space, " ")


def _load(path: Path):
    from nas.dsl import load

    return load(path)


def _write(path: Path):
    from nas.dsl import write_text_atomic

    write_text_atomic(path, "x")


def _recipe(path: Path):
    from nas.recipe import load_recipe

    return load_recipe(path)


# (module, "function: message text[:60]") → why no corpus file or API case reaches it
ALLOWED_UNCOVERED: dict[tuple[str, str], str] = {
    ("nas/dsl/nodes.py", "__init__: an architecture cannot hold choices ('{first.name}')"):
        "defensive: Space.from_data makes an Arch only of a document without choices",
    ("nas/dsl/resolve.py", "block_key: cannot name block '{key}' of choice '{choice.name}'"):
        "defensive (pragma: no cover): the second candidate name is unique to the choice",
    ("nas/dsl/plan.py", "_plan_row: stage {i}: 'n' must be a positive integer, got {n!r}"):
        "defensive: the normalizer refuses a bad 'n' first (tests/malformed/62_depth_not_positive.yaml)",
    ("nas/dsl/parse.py", "parse_yaml: 'YAML: {err}'.splitlines()[0]"):
        "defensive: every YAML error PyYAML raises while composing is a MarkedYAMLError",
    ("nas/dsl/parse.py", "read_yaml: cannot read: {err.strerror or err}"):
        "an unreadable file (permissions, I/O error); tests run as root, which reads everything",
    ("nas/dsl/parse.py", "read_yaml: file too large (over {MAX_FILE_BYTES} bytes)"):
        "a file that grows between stat() and read(): a race no test can stage reliably",
    ("nas/recipe.py", "strategy_info: strategy '{name}' is not available in this installation"):
        "defensive: every STRATEGIES entry ships with the package (an install missing a module)",
}


def load_like_show(path: Path) -> None:
    """What `nas show FILE` checks: load (parse, normalize, plan a representative) and count the space."""
    from nas.dsl import load

    load(path).size()


def load_like_search(path: Path) -> None:
    """What `nas search FILE` checks before it makes a run folder: the recipe, then the space."""
    from nas.recipe import load_recipe

    load_recipe(path).load_space()


SITES = raise_sites()


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, tuple[Site | str, SpecError | None, str]]:
    """Each corpus file and API case → (its raise site, the error, the expected fragment); the site is a text when
    no SpecError came."""
    out = {}
    runs = [(f"{p.parent.name}/{p.name}", lambda p=p: load_like_show(p), p) for p in DSL_CORPUS]
    runs += [(f"{p.parent.name}/{p.name}", lambda p=p: load_like_search(p), p) for p in RECIPE_CORPUS]
    runs += [(f"api:{name}", call, fragment)
             for name, (call, fragment) in _api_cases(tmp_path_factory.mktemp("api")).items()]
    for label, call, expected in runs:
        fragment = expectation(expected).fragment if isinstance(expected, Path) else expected
        try:
            call()
        except SpecError as err:
            out[label] = (site_of(err, SITES), err, fragment)
        else:
            out[label] = ("<accepted: no error>", None, fragment)
    return out


def _table(outcomes, labels=None) -> str:
    return "\n".join(f"{label:<48} {site}" for label, (site, _, _) in outcomes.items()
                     if labels is None or label in labels)


def test_the_corpora_are_there():
    assert len(DSL_CORPUS) >= 44 and len(RECIPE_CORPUS) >= 15
    assert len(SITES) > 200  # the AST scan finds the rules (a broken scan would pass every test below)


def test_every_file_fails_at_a_rule_site(outcomes):
    bad = {label for label, (site, _, _) in outcomes.items() if not isinstance(site, Site)}
    assert not bad, "\n" + _table(outcomes, bad)


def test_every_expected_fragment_quotes_the_site_that_fired(outcomes):
    wrong = []
    for label, (site, err, fragment) in outcomes.items():
        if not isinstance(site, Site):
            continue
        if fragment not in shown(err) or not quotes_the_site(fragment, site):
            wrong.append(f"{label}: expects {fragment!r}; got {shown(err)!r} from {site}")
    assert not wrong, "\n".join(wrong)


def test_files_at_one_site_test_different_messages(outcomes):
    """Several files may share a site that serves several rules (one helper checking many keys); two files
    with the same message at the same site test the same rule twice."""
    seen: dict[tuple, str] = {}
    twice = []
    for label, (site, err, _) in outcomes.items():
        if isinstance(site, Site):
            key = (site.key, err.message)
            if key in seen:
                twice.append(f"{seen[key]} and {label}: {err.message!r} at {site}")
            seen[key] = label
    assert not twice, "\n".join(twice)


def test_every_rule_has_its_own_file(outcomes):
    hit = defaultdict(list)
    for label, (site, _, _) in outcomes.items():
        if isinstance(site, Site):
            hit[site.key].append(label)
    uncovered = [s for s in SITES if s.key not in hit and s.key not in ALLOWED_UNCOVERED]
    assert not uncovered, (f"{len(uncovered)} rule sites without a malformed file:\n" + "\n".join(map(str, uncovered))
                           + "\n\nwhat each file hit:\n" + _table(outcomes))


def test_the_allowlist_is_current(outcomes):
    """Each allowed site still exists and is still unreached: a covered or deleted one leaves the list."""
    keys = {s.key for s in SITES}
    hit = {site.key for site, _, _ in outcomes.values() if isinstance(site, Site)}
    stale = [k for k in ALLOWED_UNCOVERED if k not in keys]
    covered = [k for k in ALLOWED_UNCOVERED if k in hit]
    assert not stale, f"allowlisted sites that no longer exist: {stale}"
    assert not covered, f"allowlisted sites that a corpus file now reaches: {covered}"
    assert len(keys) == len(SITES), "two sites share a key: make the allowlist keys unique"


def test_the_site_finder_is_right():
    """A known error traces to its known raise statement (not to the caller, not to another rule)."""
    from nas.dsl import loads

    with pytest.raises(SpecError) as caught:
        loads("name: x\nstages:\n  - {op: irr, c: 8, s: 1}\n", "x.yaml")
    site = site_of(caught.value, SITES)
    assert isinstance(site, Site) and site.path == "nas/dsl/plan.py" and site.function == "complete"
    assert "unknown op" in site.message and quotes_the_site("unknown op 'irr'", site)
    assert not quotes_the_site("'irr'", site)  # only the value put into the message: names no rule
    assert (CODE / site.path).read_text().splitlines()[site.first_line - 1].strip().startswith("raise SpecError(")
