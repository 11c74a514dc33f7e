"""README.md stays true: its Python examples run and its `nas ...` command lines exit 0.

The command lines run as *scenarios*: a README code block, in order, in a fresh folder of its own. A block that reads
a path under runs/ which an earlier block writes (the report section reads the search section's run) is run after
that block in the same scenario, so every test passes alone, in any order, and under `-k`; a block another scenario
already replays is not run twice.
"""
import re
import shlex
from pathlib import Path

import pytest

from nas.cli import main

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
RUN_PATH = re.compile(r"\bruns/[\w.\-]+")


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def _run_python_block(marker: str) -> dict:
    """Exec the one README python block containing `marker`; its namespace, to check what the README claims."""
    (block,) = [b for b in _blocks("python") if marker in b]
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)
    return namespace


def test_every_python_example_is_checked():
    assert len(_blocks("python")) == 2  # a new block needs its own test below


@pytest.mark.slow  # the README's example trains
def test_python_api_example_does_what_its_comments_say(monkeypatch):
    import torch

    from nas.cost import count_arch

    monkeypatch.chdir(ROOT)
    ns = _run_python_block("space.size()")
    space, picks, arch, model = ns["space"], ns["picks"], ns["arch"], ns["model"]
    assert space.size() == 984770902183611232881 and set(picks) == set(space.choices())
    assert picks["stages.0.layers.0"] == "k5_e3"
    assert isinstance(model, torch.nn.Module) and all(name in dict(model.named_modules()) for name in picks)
    full = count_arch(arch).total
    assert (ns["table"].estimate(picks).flops, ns["table"].estimate(picks).params) == (full.flops, full.params)
    small = ns["small"]
    assert small.doc["input"] == {"channels": 1, "size": 32} and small.doc["classes"] == 10
    assert [r["c"] for r in small.doc["stages"]] == [8, 16, 16, 32, 56, 96, 176]  # half width, multiples of 8
    assert [len(r["layers"]) for r in small.doc["stages"]] == [1, 3, 3, 3, 3, 3, 1]  # ceil(0.75 × depth)


def test_exported_model_example_is_the_fbnet_c_it_describes():
    import torch

    import nas

    ns = _run_python_block("class Net(Network)")
    with torch.device("meta"):
        net, reference = ns["Net"](), nas.build(nas.zoo.load("fbnet_c"))
    assert sum(p.numel() for p in net.parameters()) == 5_572_200  # as its docstring says
    assert {k: v.shape for k, v in net.state_dict().items()} == \
        {k: v.shape for k, v in reference.state_dict().items()}


def _command_blocks() -> list[list[str]]:
    """The `nas ...` lines of each bash block that has any."""
    blocks = []
    for block in _blocks("bash"):
        lines = [line.split("#", 1)[0].strip() for line in block.splitlines()]
        lines = [line for line in lines if line.startswith("nas ")]
        if lines:
            blocks.append(lines)
    return blocks


def _writes(lines: list[str]) -> set[str]:
    """The runs/ paths a block's commands write (their -o targets)."""
    written = set()
    for line in lines:
        argv = shlex.split(line)
        for flag, value in zip(argv, argv[1:]):
            if flag in ("-o", "--output"):
                written.update(RUN_PATH.findall(value))
    return written


def _scenarios() -> list[list[list[str]]]:
    """Each block, preceded by the earlier blocks whose runs/ output it reads (and, in turn, theirs)."""
    blocks = _command_blocks()
    scenarios = []
    for i, lines in enumerate(blocks):
        needed, chain = {p for line in lines for p in RUN_PATH.findall(line)} - _writes(lines), []
        for earlier in reversed(blocks[:i]):
            if needed & _writes(earlier):
                chain.insert(0, earlier)
                needed = (needed - _writes(earlier)) | ({p for line in earlier for p in RUN_PATH.findall(line)}
                                                       - _writes(earlier))
        assert not needed, f"README block {i} reads {sorted(needed)}, which no earlier block writes"
        scenarios.append(chain + [lines])
    # drop a scenario that is the start of another one: the longer one runs its commands anyway
    return [s for s in scenarios if not any(len(o) > len(s) and o[:len(s)] == s for o in scenarios)]


SCENARIOS = _scenarios()


def test_scenarios_cover_every_command_line_and_the_report_follows_its_search():
    """Every command line runs in some scenario; the report block replays the search it reads."""
    assert sorted(map(tuple, _command_blocks())) == sorted({tuple(b) for s in SCENARIOS for b in s})
    report = next(s for s in SCENARIOS if any(line.startswith("nas report") for line in s[-1]))
    assert any(line.startswith("nas search recipes/fbnet_tpe.yaml") for block in report[:-1] for line in block)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A fresh folder that sees the repository's search_spaces/ and recipes/, so runs/ lands outside the checkout."""
    (tmp_path / "search_spaces").symlink_to(ROOT / "search_spaces")
    (tmp_path / "recipes").symlink_to(ROOT / "recipes")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.slow
@pytest.mark.parametrize("scenario", SCENARIOS, ids=["+".join(b[0].split()[1] for b in s) for s in SCENARIOS])
def test_command_lines_succeed(scenario, workdir, capsys):
    for line in (line for block in scenario for line in block):
        argv = shlex.split(line)[1:]
        if argv == ["--version"]:
            with pytest.raises(SystemExit) as stop:
                main(argv)
            assert stop.value.code == 0
        else:
            assert main(argv) == 0, f"{line}\n{capsys.readouterr().err}"
