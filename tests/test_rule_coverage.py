"""Every validation rule has its own malformed file.

Each file of tests/malformed/ (spaces, as `nas show` reads them) and tests/malformed_recipes/ (recipes, as
`nas search` reads them before it makes a run folder) is loaded in-process; the SpecError it raises is traced to
its `raise` statement. Every `raise SpecError(...)` of the rule modules must be the site of at least one file
(or be listed in ALLOWED_UNCOVERED with the reason), and each file's expected fragment must quote the message of
the site that fired — so a rule that changes its meaning, or a file that trips another rule first, fails here
even when some message still contains the fragment. (tests/test_errors.py and tests/test_recipe.py run the same
files through the CLI: one located line, exit 2.)
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from nas.dsl.errors import SpecError
from rule_sites import (DSL_CORPUS, RECIPE_CORPUS, ROOT, Site, expectation, quotes_the_site, raise_sites, shown,
                        site_of)

# (module, "function: message text[:60]") → why no corpus file reaches it
ALLOWED_UNCOVERED: dict[tuple[str, str], str] = {}


def load_like_show(path: Path) -> None:
    """What `nas show FILE` checks: load (parse, normalize, plan a representative), the size, and for an
    architecture the build budget (`nas show` counts it, and building checks the budget first)."""
    from nas.budget import check_budget
    from nas.dsl import load

    space = load(path)
    space.size()
    if not space.choices():
        check_budget(space.plan(), str(path))


def load_like_search(path: Path) -> None:
    """What `nas search FILE` checks before it makes a run folder: the recipe, then (multi-trial) the space."""
    from nas.recipe import load_recipe

    recipe = load_recipe(path)
    if recipe.strategy.name != "dnas":
        recipe.load_space()


SITES = raise_sites()


@pytest.fixture(scope="module")
def outcomes() -> dict[Path, tuple[Site | str, SpecError | None]]:
    """Each corpus file → (its raise site, the error); the site is a text when no SpecError came."""
    out = {}
    for corpus, load in ((DSL_CORPUS, load_like_show), (RECIPE_CORPUS, load_like_search)):
        for path in corpus:
            try:
                load(path)
            except SpecError as err:
                out[path] = (site_of(err, SITES), err)
            else:
                out[path] = ("<accepted: no error>", None)
    return out


def _table(outcomes, paths=None) -> str:
    rows = [f"{p.parent.name}/{p.name:<42} {site}" for p, (site, _) in outcomes.items() if paths is None or p in paths]
    return "\n".join(rows)


def test_the_corpora_are_there():
    assert len(DSL_CORPUS) >= 44 and len(RECIPE_CORPUS) >= 15
    assert len(SITES) > 200  # the AST scan finds the rules (a broken scan would pass every test below)


def test_every_file_fails_at_a_rule_site(outcomes):
    bad = {p: site for p, (site, _) in outcomes.items() if not isinstance(site, Site)}
    assert not bad, "\n" + _table(outcomes, bad)


def test_every_expected_fragment_quotes_the_site_that_fired(outcomes):
    wrong = []
    for path, (site, err) in outcomes.items():
        if not isinstance(site, Site):
            continue
        fragment = expectation(path).fragment
        if fragment not in shown(err) or not quotes_the_site(fragment, site):
            wrong.append(f"{path.name}: expects {fragment!r}; got {shown(err)!r} from {site}")
    assert not wrong, "\n".join(wrong)


def test_files_at_one_site_test_different_messages(outcomes):
    """Several files may share a site that serves several rules (one helper checking many keys); two files
    with the same message at the same site test the same rule twice."""
    seen: dict[tuple, Path] = {}
    twice = []
    for path, (site, err) in outcomes.items():
        if isinstance(site, Site):
            key = (site.key, err.message)
            if key in seen:
                twice.append(f"{seen[key].name} and {path.name}: {err.message!r} at {site}")
            seen[key] = path
    assert not twice, "\n".join(twice)


def test_every_rule_has_its_own_file(outcomes):
    hit = defaultdict(list)
    for path, (site, _) in outcomes.items():
        if isinstance(site, Site):
            hit[site.key].append(path.name)
    uncovered = [s for s in SITES if s.key not in hit and s.key not in ALLOWED_UNCOVERED]
    assert not uncovered, f"{len(uncovered)} rule sites without a malformed file:\n" + "\n".join(map(str, uncovered))


def test_the_allowlist_is_current(outcomes):
    """Each allowed site still exists and is still unreached: a covered or deleted one leaves the list."""
    keys = {s.key for s in SITES}
    hit = {site.key for site, _ in outcomes.values() if isinstance(site, Site)}
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
    assert (ROOT / site.path).read_text().splitlines()[site.first_line - 1].strip().startswith("raise SpecError(")
