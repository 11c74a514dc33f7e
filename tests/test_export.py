"""Export: standalone source equals nas.build, hostile specs cannot inject code, TorchScript/ONNX round trips."""
import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import nas
from nas.cli import main
from nas.dsl import SpecError
from nas.export import check_onnx, export, python_source

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(__file__).parent / "export_corpus"
SITE = str(Path(torch.__file__).resolve().parent.parent)

# Runs in a Python without site-packages processing, so the editable `nas` install is invisible; only the
# folder that holds torch is added back. Each case folder holds model.py, weights.pt and input.pt.
RUNNER = f"""
import importlib.util, json, sys
sys.path.append({SITE!r})
try:
    import nas
    print(json.dumps({{"nas_importable": True}})); sys.exit(0)
except ImportError:
    pass
import torch
results = {{}}
for folder in sys.argv[1:]:
    spec = importlib.util.spec_from_file_location("model_" + str(len(results)), folder + "/model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    net = getattr(module, "Net")().eval()
    net.load_state_dict(torch.load(folder + "/weights.pt", weights_only=True))
    with torch.no_grad():
        out = net(torch.load(folder + "/input.pt", weights_only=True))
    torch.save(out, folder + "/output.pt")
    results[folder] = {{"params": sum(p.numel() for p in net.parameters()), "doc": module.__doc__,
                       "keys": sorted(net.state_dict())}}
print(json.dumps(results))
"""


def _run_standalone(folders: list[Path], cwd: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    out = subprocess.run([sys.executable, "-S", "-c", RUNNER, *map(str, folders)], cwd=str(cwd), env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert "nas_importable" not in result, "the subprocess could import nas"
    return result


def _cases():
    cases = []
    for name in nas.zoo.names():
        arch = nas.zoo.load(name)
        if not arch.choices():
            cases.append((f"zoo-{name}", arch))
    for space_name, size, count in (("fbnet", 64, 7), ("nasnet", 64, 7), ("darts", 32, 6)):
        space = nas.load(ROOT / "search_spaces" / f"{space_name}.yaml").with_input(size=size)
        if space_name == "nasnet":
            space = nas.loads(nas.dsl.dumps(space).replace("N: 4", "N: 2"))
        for seed in range(count):
            cases.append((f"{space_name}-{seed}", space.resolve(space.sample(100 + seed))))
        if space_name == "nasnet":  # plus one whose cells ignore an input, so some cells are never built
            dead = next(a for a in (space.resolve(space.sample(s)) for s in range(1000))
                        if not all(cell.live for cell in a.plan().cells))
            cases.append(("nasnet-dead-cells", dead))
    return cases


@pytest.mark.slow
def test_standalone_modules_match_nas_build(tmp_path):
    cases = _cases()
    assert sum(1 for name, _ in cases if not name.startswith("zoo-")) >= 20
    folders, expected = [], {}
    for i, (name, arch) in enumerate(cases):
        folder = tmp_path / f"case{i}"
        export(arch, folder, ["py", "weights"], seed=i)
        model = nas.build(arch).eval()
        model.load_state_dict(torch.load(folder / "weights.pt", weights_only=True))
        x = torch.randn(2, *arch.plan().input_shape, generator=torch.Generator().manual_seed(i))
        torch.save(x, folder / "input.pt")
        with torch.no_grad():
            expected[str(folder)] = (name, model(x), sum(p.numel() for p in model.parameters()),
                                     sorted(model.state_dict()))
        folders.append(folder)
    results = _run_standalone(folders, tmp_path)
    for folder, (name, output, params, keys) in expected.items():
        got = results[folder]
        assert got["params"] == params, name
        assert got["keys"] == keys, name
        assert torch.allclose(torch.load(Path(folder) / "output.pt", weights_only=True), output, atol=1e-5), name


def test_generated_source_is_readable_and_only_what_is_used():
    space = nas.load(ROOT / "search_spaces" / "fbnet.yaml")
    source = python_source(space.resolve(space.sample(0)), class_name="FBNetSample")
    assert "class FBNetSample(Network):" in source and "class InvertedResidual" in source
    assert "class SepConv" not in source and "class CellModule" not in source  # only used blocks
    assert "import nas" not in source and "from nas" not in source
    assert "ARCH_YAML = " in source and "layers: [" in source
    assert "parameters" in source.split('"""')[1]


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.yaml")), ids=lambda p: p.stem)
def test_hostile_specs_cannot_inject_code(path, tmp_path):
    first = path.read_text().splitlines()[0]
    if first.startswith("# expect-error:"):
        with pytest.raises(SpecError, match=first.split(":", 1)[1].strip()):
            nas.load(path)
        return
    arch = nas.load(path)
    folder = tmp_path / "out"
    export(arch, folder, ["py", "weights"])
    x = torch.randn(1, *arch.plan().input_shape)
    torch.save(x, folder / "input.pt")
    results = _run_standalone([folder], tmp_path)
    assert not list(tmp_path.rglob("PWNED")) and not (ROOT / "PWNED").exists()
    doc = results[str(folder)]["doc"]
    assert "\n" not in doc.splitlines()[0] and '"' not in doc and "\\" not in doc
    model_source = (folder / "model.py").read_text()
    calls = {node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
             for node in ast.walk(ast.parse(model_source)) if isinstance(node, ast.Call)}
    assert not calls & {"__import__", "exec", "eval", "system", "compile", "open", "getattr"}
    namespace: dict = {}
    exec(compile(model_source, "model.py", "exec"), namespace)
    assert namespace["ARCH_YAML"] == nas.dsl.dumps(arch)  # the YAML rides along intact


@pytest.mark.parametrize("bad", ["1Net", "class", "Net-2", "Net;import os", "Ñet", "InvertedResidual", ""])
def test_class_name_must_be_a_fresh_identifier(bad, tmp_path):
    with pytest.raises(SpecError):
        export(nas.zoo.load("b0").with_input(size=32), tmp_path, ["py"], class_name=bad)


@pytest.mark.parametrize("name,space,size", [("fbnet", "fbnet", 64), ("darts", "darts", 32),
                                             ("b0", "efficientnet_b0", 64)])
def test_torchscript_and_onnx_round_trips(name, space, size, tmp_path):
    import onnxruntime  # noqa: F401 - installed with the onnx extra; the test checks outputs with it

    loaded = nas.load(ROOT / "search_spaces" / f"{space}.yaml").with_input(size=size)
    arch = loaded.resolve(loaded.sample(3)) if loaded.choices() else loaded
    written = export(arch, tmp_path, ["torchscript", "onnx", "weights"], seed=1)
    model = nas.build(arch).eval()
    model.load_state_dict(torch.load(written["weights"], weights_only=True))
    x = torch.randn(3, *arch.plan().input_shape)  # another batch size than the traced example
    scripted = torch.jit.load(str(written["torchscript"]))
    with torch.no_grad():
        assert torch.allclose(scripted(x), model(x), atol=1e-5)
    assert check_onnx(model, x, written["onnx"]) < 1e-4


def test_cli_export_from_a_run_folder(tmp_path, capsys):
    run = tmp_path / "run"
    arch = nas.zoo.load("b0").with_input(size=32).with_classes(5)
    run.mkdir()
    nas.dump(arch, run / "arch.yaml")
    trained = nas.build(arch, seed=42).state_dict()
    torch.save(trained, run / "weights.pt")
    out = tmp_path / "out"
    assert main(["export", str(run), "--format", "py,yaml,weights", "-o", str(out), "--class-name", "B0"]) == 0
    assert "model.py has" in capsys.readouterr().out
    saved = torch.load(out / "weights.pt", weights_only=True)
    assert all(torch.equal(saved[k], trained[k]) for k in trained)  # the run's weights, not fresh ones
    assert "class B0(Network)" in (out / "model.py").read_text()


@pytest.mark.parametrize("argv,fragment", [
    (["export", "b0", "--format", "onxx", "-o", "{tmp}/o"], "did you mean 'onnx'"),
    (["export", "search_spaces/fbnet.yaml", "-o", "{tmp}/o"], "is a search space"),
    (["export", "b0", "--class-name", "2fast", "-o", "{tmp}/o"], "not a valid Python class name"),
    (["export", "b0", "--weights", "{tmp}/none.pt", "-o", "{tmp}/o"], "no such weights file"),
    (["export", "b0", "--weights", "{weights}", "-o", "{tmp}/o"], "do not fit"),
    (["export", "b0", "-o", "{file}/sub"], "cannot write there"),
    (["export", "{tmp}", "-o", "{tmp}/o"], "not a run folder"),
])
def test_cli_bad_input(argv, fragment, tmp_path, capsys):
    other = tmp_path / "other.pt"
    torch.save(nas.build(nas.zoo.load("mobilenetv2")).state_dict(), other)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    argv = [a.format(tmp=tmp_path, weights=other, file=blocker) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1 and fragment in err, err
