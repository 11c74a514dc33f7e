"""A non-editable install ships the spaces and the zoo: `nas count b0` works from any folder."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_non_editable_install_finds_the_zoo_from_another_folder(tmp_path):
    # Build from a copy, so the checkout gets no build/ or egg-info; install into a target folder (no deps,
    # the running environment's setuptools) that is put first on the path, ahead of the editable checkout.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("nas", "search_spaces", "pyproject.toml", "setup.py", "README.md"):
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy2
        copy(ROOT / name, src / name, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                          if (ROOT / name).is_dir() else {}))
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(site), str(src)], check=True, timeout=600)
    shipped = site / "nas" / "search_spaces"
    assert (shipped / "efficientnet_b0.yaml").is_file() and (shipped / "zoo" / "resnet18.yaml").is_file()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("NAS_SPACES", "PYTHONPATH")}
    env["PYTHONPATH"] = str(site)
    where = subprocess.run([sys.executable, "-c", "import nas, nas.zoo; print(nas.__file__); "
                            "print(nas.zoo.spaces_dir())"], cwd=elsewhere, env=env, capture_output=True,
                           text=True, timeout=300, check=True).stdout.split()
    assert where == [str(site / "nas" / "__init__.py"), str(shipped)]  # the installed copy, not the checkout
    out = subprocess.run([sys.executable, "-m", "nas", "count", "b0"], cwd=elsewhere, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "params 5,288,548" in out.stdout and "385,814,752" in out.stdout
