"""README.md stays true: its Python examples run and its `nas ...` command lines exit 0."""
import re
import shlex
from pathlib import Path

import pytest

from nas.cli import main

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_python_examples_run(monkeypatch):
    monkeypatch.chdir(Path(__file__).resolve().parent.parent)
    for block in _blocks("python"):
        exec(compile(block, "README.md", "exec"), {})


def _commands() -> list[str]:
    lines = []
    for block in _blocks("bash"):
        for line in block.splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("nas "):
                lines.append(line)
    return lines


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A scratch folder that sees the repository's search_spaces/ and recipes/, so runs/ lands outside the checkout."""
    folder = tmp_path_factory.mktemp("readme")
    (folder / "search_spaces").symlink_to(Path(__file__).resolve().parent.parent / "search_spaces")
    (folder / "recipes").symlink_to(Path(__file__).resolve().parent.parent / "recipes")
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("line", _commands())
def test_command_lines_succeed(line, workdir, monkeypatch, capsys):
    monkeypatch.chdir(workdir)  # the commands run in order, each using what the one before wrote
    argv = shlex.split(line)[1:]
    if argv == ["--version"]:
        with pytest.raises(SystemExit) as stop:
            main(argv)
        assert stop.value.code == 0
    else:
        assert main(argv) == 0, capsys.readouterr().err
