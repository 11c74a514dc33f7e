"""Build step beside pyproject.toml: ship the spaces and the zoo inside the installed package.

search_spaces/ at the top of the checkout stays the one source of truth (the folder users read and edit); a
non-editable build copies its YAML files into the package as nas/search_spaces/, where `nas.zoo` finds them
after `pip install .`. Editable installs read the checkout's folder directly.
"""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildWithSpaces(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "nas" / "search_spaces"
        shutil.copytree(ROOT / "search_spaces", target, dirs_exist_ok=True,
                        ignore=lambda folder, names: [n for n in names if not (n.endswith(".yaml") or
                                                                              (Path(folder) / n).is_dir())])


setup(cmdclass={"build_py": BuildWithSpaces})
