"""Export: standalone source equals nas.build, hostile specs cannot inject code, TorchScript/ONNX round trips."""
import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import nas
from nas.cli import main
from nas.cost.flops import Cost
from nas.dsl import SpecError
from nas.dsl.transform import with_preprocess
from nas.export import check_onnx, export, python_source, text_literal

from test_zoo import NAMES as ZOO_NAMES  # the fixed architectures, found once for the test files

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(__file__).parent / "export_corpus"
SITE = str(Path(torch.__file__).resolve().parent.parent)
SIZES = (32, 48, 64, 80, 96, 128, 160, 224)

# Runs under `python -I -S` (no site-packages processing, no user site, PYTHONPATH ignored), so the editable
# `nas` install is invisible; only the folder that holds torch is put back. It first proves that `import nas`
# fails. Each case folder holds model.py, weights.pt and input.pt; it writes output.pt. Each module runs with its
# own folder as the working directory, so a file a hostile module managed to write says which module wrote it.
RUNNER = f"""
import importlib.util, json, os, sys
sys.path.append({SITE!r})
try:
    import nas
    print(json.dumps({{"nas_importable": True}})); sys.exit(0)
except ImportError:
    pass
import torch
torch.set_num_threads(1)
results = {{}}
for folder in sys.argv[1:]:
    os.chdir(folder)
    spec = importlib.util.spec_from_file_location("model_" + str(len(results)), folder + "/model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    net = getattr(module, "Net")().eval()
    net.load_state_dict(torch.load(folder + "/weights.pt", weights_only=True))
    raw = folder + "/raw.pt"  # raw images: the module's own preprocess() prepares them
    with torch.no_grad():
        if os.path.exists(raw):
            out = net(module.preprocess(torch.load(raw, weights_only=True)))
        else:
            out = net(torch.load(folder + "/input.pt", weights_only=True))
    torch.save(out, folder + "/output.pt")
    results[folder] = {{"params": sum(p.numel() for p in net.parameters()), "doc": module.__doc__,
                       "yaml": module.ARCH_YAML, "keys": sorted(net.state_dict()),
                       "classes": list(getattr(module, "CLASSES", [])) or None}}
print(json.dumps(results))
"""


def _run_standalone(folders: list[Path], cwd: Path) -> dict:
    assert all(Path(folder).is_absolute() for folder in folders)  # the runner changes directory per module
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    out = subprocess.run([sys.executable, "-I", "-S", "-c", RUNNER, *map(str, folders)], cwd=str(cwd), env=env,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert "nas_importable" not in result, "the subprocess could import nas"
    return result


def _small(arch):
    """The arch at the smallest input size it plans at (cheap to run); the full size is checked on meta."""
    for size in SIZES:
        if size >= arch.plan().input_shape[1]:
            break
        try:
            smaller = arch.with_input(size=size)
            smaller.plan()
            return smaller
        except SpecError:
            continue
    return arch


HEAVY_PARAMS = 8_000_000  # above this, an entry's weights cost seconds to write and load twice
GOLDEN_ZOO = json.loads((ROOT / "tests" / "golden" / "counts.json").read_text())["zoo"]
# entries whose blocks derive their output width from inner widths that `with_width` does not scale
FIXED_WIDTH = {"densenet121", "googlenet", "inception_v3"}


def _zoo_case_id(name: str) -> str:
    heavy = GOLDEN_ZOO.get(name, {}).get("params", 0) > HEAVY_PARAMS  # pinned counts: no build at collection
    return f"zoo-{name}-w0.25" if heavy and name not in FIXED_WIDTH else f"zoo-{name}"


def _zoo_case(name: str):
    """A zoo entry as exported: fixed architectures as they are, search spaces by one sample. Heavy entries run at a
    quarter of their width: the same ops and wiring in the generated code, a sixteenth of the weights to write and
    load (their full-size state_dict is compared on the meta device below)."""
    arch = nas.zoo.load(name)
    if arch.choices():
        arch = arch.resolve(arch.sample(7))
    if _zoo_case_id(name).endswith("-w0.25"):
        arch = arch.with_width(0.25)
    return _small(arch)


def _zoo_cases():
    """Every zoo entry, as (case id, arch)."""
    return [(_zoo_case_id(name), _zoo_case(name)) for name in nas.zoo.names()]


def _dead_cells_case():
    """A half-depth NASNet sample whose cells ignore an input, so some cells are never built."""
    space = nas.load(ROOT / "search_spaces" / "nasnet.yaml").with_input(size=32).with_depth(0.5)
    return next(a for a in (space.resolve(space.sample(s)) for s in range(1000))
                if not all(cell.live for cell in a.plan().cells))


def _sampled_cases():
    """20+ sampled FBNet/NASNet/DARTS architectures at small sizes (NASNet at half depth, N=2)."""
    cases = []
    for space_name, size, count in (("fbnet", 64, 7), ("nasnet", 32, 7), ("darts", 32, 6)):
        space = nas.load(ROOT / "search_spaces" / f"{space_name}.yaml").with_input(size=size)
        if space_name == "nasnet":
            space = space.with_depth(0.5)  # N = 2
        for seed in range(count):
            cases.append((f"{space_name}-{seed}", space.resolve(space.sample(100 + seed))))
        if space_name == "nasnet":
            cases.append(("nasnet-dead-cells", _dead_cells_case()))
    return cases


pytestmark = pytest.mark.usefixtures("one_thread")


def _check_standalone(cases, tmp_path):
    """Each case's model.py, given the weights of `nas.build(arch, seed=i)`, computes what that network computes.
    The files are written by what `export` writes them with (python_source, a saved state_dict) without export's
    fvcore count for the docstring (two thirds of an export's time; the docstring's figures are not what this
    compares): `export` itself, count included, is run end to end into a fresh process by the hostile-spec and
    preprocessing tests below."""
    folders, expected = [], {}
    for i, (name, arch) in enumerate(cases):
        folder = tmp_path / f"case{i}"
        folder.mkdir()
        (folder / "model.py").write_text(python_source(arch, cost=Cost(0.0, 0)), encoding="utf-8")
        model = nas.build(arch, seed=i).eval()
        torch.save(model.state_dict(), folder / "weights.pt")
        x = torch.randn(1, *arch.plan().input_shape, generator=torch.Generator().manual_seed(i))
        torch.save(x, folder / "input.pt")
        with torch.no_grad():
            expected[str(folder)] = (name, model(x), sum(p.numel() for p in model.parameters()),
                                     sorted(model.state_dict()), nas.dsl.dumps(arch))
        folders.append(folder)
    results = _run_standalone(folders, tmp_path)
    for folder, (name, output, params, keys, yaml_text) in expected.items():
        got = results[folder]
        assert got["params"] == params, name
        assert got["keys"] == keys, name
        assert got["yaml"] == yaml_text and yaml_text in got["doc"], name
        assert torch.allclose(torch.load(Path(folder) / "output.pt", weights_only=True), output, atol=1e-5), name


@pytest.mark.slow
def test_standalone_zoo_modules_match_nas_build(tmp_path):
    cases = _zoo_cases()
    names = {name for name, _ in cases}
    assert {"zoo-efficientnet_b0", "zoo-fbnet", "zoo-darts", "zoo-nasnet_a_large-w0.25", "zoo-inception_v3"} <= names
    assert len(cases) == len(nas.zoo.names())
    _check_standalone(cases, tmp_path)


@pytest.mark.slow
def test_standalone_sampled_modules_match_nas_build(tmp_path):
    cases = _sampled_cases()
    assert len(cases) >= 20
    _check_standalone(cases, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", ZOO_NAMES)
def test_full_size_zoo_source_has_nas_builds_state_dict_shapes_on_meta(name):
    """At the published input size, without allocating: same state_dict keys and shapes as nas.build."""
    arch = nas.zoo.load(name)
    namespace: dict = {}
    exec(compile(python_source(arch, cost=Cost(0.0, 0)), "model.py", "exec"), namespace)
    with torch.device("meta"):
        ours, reference = namespace["Net"](), nas.build(arch)
    assert {k: v.shape for k, v in ours.state_dict().items()} == \
        {k: v.shape for k, v in reference.state_dict().items()}


def test_generated_source_is_readable_and_only_what_is_used():
    space = nas.load(ROOT / "search_spaces" / "fbnet.yaml")
    arch = space.resolve(space.sample(0))
    source = python_source(arch, class_name="FBNetSample")
    assert "class FBNetSample(Network):" in source and "class InvertedResidual" in source
    assert "class SepConv" not in source and "class CellModule" not in source  # only used blocks
    assert "import nas" not in source and "from nas" not in source
    tree = ast.parse(source)
    doc = ast.get_docstring(tree)
    assert doc.startswith(arch.name) and "parameters" in doc and "multiply-adds" in doc
    assert nas.dsl.dumps(arch).strip() in doc  # the YAML, readable, in the docstring
    assert "InvertedResidual(c_in=16, c=" in source  # literal constructor calls
    imports = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imports |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imports <= {"torch", "torch.nn", "torch.nn.functional", "math", "__future__"}


def _trained_mobilenetv2(classes=None):
    """MobileNetV2 at 32² with a `nas train` preprocessing record: model.py gets the constants and preprocess()."""
    record = {"size": 32, "channels": 3, "mean": [0.49, 0.48, 0.45], "std": [0.25, 0.24, 0.26],
              "classes": classes or [f"class {i}" for i in range(10)]}
    return with_preprocess(nas.zoo.load("mobilenetv2").with_input(size=32).with_classes(10), record)


def _classes_at(width: int):
    """Class names that make a one-line CLASSES tuple just fit (100) or pass (101) 100 columns."""
    names = [f"c{i}" for i in range(9)]
    line = "CLASSES = (" + ", ".join(repr(n) for n in names) + ", 'x',)"
    return names + ["x" * (1 + width - len(line))]


def _lint_cases():
    """Every zoo entry (spaces by one sample) and a NASNet sample with dead cells, with a trained record: (id, a
    function that makes the arch), so that collecting the tests builds nothing."""
    cases = [(_zoo_case_id(name), lambda name=name: _zoo_case(name)) for name in nas.zoo.names()]
    cases.append(("nasnet-dead-cells", _dead_cells_case))
    cases.append(("trained-mobilenetv2", _trained_mobilenetv2))
    for width in (100, 101):
        cases.append((f"classes-line-{width}", lambda width=width: _trained_mobilenetv2(_classes_at(width))))
    return cases


@pytest.mark.parametrize("case", _lint_cases(), ids=lambda c: c[0])
def test_exported_source_lints_clean_and_fits_100_columns(case):
    """model.py reads as written by hand: pyflakes finds no unused import and no undefined name (annotations
    included), no line passes 100 columns, and every annotation resolves (`typing.get_type_hints`)."""
    import io
    import typing

    from pyflakes.api import check
    from pyflakes.reporter import Reporter

    name, make = case
    arch = make()
    source = python_source(arch, cost=Cost(flops=0.0, params=0))
    warnings, errors = io.StringIO(), io.StringIO()
    assert check(source, "model.py", Reporter(warnings, errors)) == 0, warnings.getvalue() + errors.getvalue()
    too_long = [(i, len(line)) for i, line in enumerate(source.splitlines(), 1) if len(line) > 100]
    assert not too_long, too_long[:5]
    namespace: dict = {}
    exec(compile(source, "model.py", "exec"), namespace)
    ours = lambda f: getattr(getattr(f, "__code__", None), "co_filename", None) == "model.py"  # noqa: E731
    functions = [v for v in namespace.values() if ours(v)]
    functions += [f for v in namespace.values() if isinstance(v, type) for f in vars(v).values() if ours(f)]
    assert len(functions) > 3
    for function in functions:
        typing.get_type_hints(function, namespace)  # NameError if an annotation names what is not there


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_text_literal_round_trips_any_text(text):
    literal = text_literal(text)
    tree = ast.parse(literal)
    assert len(tree.body) == 1 and isinstance(tree.body[0].value, ast.Constant)  # nothing but one string
    assert tree.body[0].value.value == text
    assert literal.isascii() and "\r" not in literal


def _expected_error(path: Path) -> str | None:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    return first.split(":", 1)[1].strip() if first.startswith("# expect-error:") else None


@pytest.fixture(scope="module")
def hostile_exports(tmp_path_factory):
    """Every corpus spec that loads, exported (the parent working in the same folder, so code run while exporting
    would write there too) and run in ONE fresh process where `import nas` fails: starting Python and importing
    torch is most of the cost, paid once, not once per spec. The runner works in each module's own folder, so a
    written file still names the spec. → (that folder, {stem: (arch, its folder)}, {stem: what its export
    raised}, the runner's results)."""
    root = tmp_path_factory.mktemp("hostile")
    exported, failed = {}, {}
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        for path in sorted(CORPUS.glob("*.yaml")):
            if _expected_error(path) is None:
                try:
                    arch = nas.load(path)
                    folder = root / path.stem
                    export(arch, folder, ["py", "weights"])
                    torch.save(torch.randn(1, *arch.plan().input_shape), folder / "input.pt")
                    exported[path.stem] = (arch, folder)
                except Exception as err:  # raised again by that spec's own test; the other specs still run
                    failed[path.stem] = err
        results = _run_standalone([folder for _, folder in exported.values()], root)
    return root, exported, failed, results


@pytest.mark.parametrize("path", [p if _expected_error(p) else pytest.param(p, marks=pytest.mark.slow)  # a process
                                  for p in sorted(CORPUS.glob("*.yaml"))], ids=lambda p: p.stem)
def test_hostile_specs_cannot_inject_code(path, request):
    message = _expected_error(path)
    if message is not None:
        with pytest.raises(SpecError, match=message):
            nas.load(path)
        return
    root, exported, failed, results = request.getfixturevalue("hostile_exports")
    if path.stem in failed:
        raise failed[path.stem]
    arch, folder = exported[path.stem]
    model_source = (folder / "model.py").read_text(encoding="utf-8")
    tree = ast.parse(model_source)
    # the module holds only: docstring, imports, our copied definitions, ARCH_YAML and the Net class
    kinds = [type(n).__name__ for n in tree.body]
    assert kinds[0] == "Expr" and set(kinds[1:]) <= {"ImportFrom", "Import", "ClassDef", "FunctionDef", "Assign"}
    constants = ["ARCH_YAML"] + (["INPUT_SIZE", "INPUT_CHANNELS", "MEAN", "STD", "CLASSES"]
                                 if "preprocess" in arch.doc else [])
    assert [n.targets[0].id for n in tree.body if isinstance(n, ast.Assign)] == constants
    calls = {node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
             for node in ast.walk(tree) if isinstance(node, ast.Call)}
    assert not calls & {"__import__", "exec", "eval", "system", "compile", "open", "getattr", "popen"}
    assert not list(folder.rglob("PWNED")) and not (root / "PWNED").exists() and not (ROOT / "PWNED").exists()
    got = results[str(folder)]
    assert got["classes"] == arch.doc.get("preprocess", {}).get("classes")  # class names arrive intact
    assert got["yaml"] == nas.dsl.dumps(arch)  # the YAML rides along intact, quotes and all
    first_line = got["doc"].splitlines()[0]
    assert all(ch not in first_line for ch in "\"'\\\u202e") and first_line.isascii()


NOT_AN_IDENTIFIER = "is not a valid Python class name"
TAKEN = "is already used by the exported code"


@pytest.mark.parametrize("bad,fragment", [("1Net", NOT_AN_IDENTIFIER), ("class", NOT_AN_IDENTIFIER),
                                          ("Net-2", NOT_AN_IDENTIFIER), ("Net;import os", NOT_AN_IDENTIFIER),
                                          ("Ñet", NOT_AN_IDENTIFIER), ("", NOT_AN_IDENTIFIER),
                                          ("InvertedResidual", TAKEN), ("ARCH_YAML", TAKEN), ("torch", TAKEN)])
def test_class_name_must_be_a_fresh_identifier(bad, fragment, tmp_path):
    with pytest.raises(SpecError, match=re.escape(f"'{bad}' {fragment}")):
        export(nas.zoo.load("b0").with_input(size=32), tmp_path, ["py"], class_name=bad)


@pytest.mark.slow  # whole networks through TorchScript and ONNX
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


def test_weights_from_a_state_dict_or_a_callable(tmp_path):
    arch = nas.zoo.load("b0").with_input(size=32).with_classes(3)
    trained = nas.build(arch, seed=5).state_dict()
    from_dict = export(arch, tmp_path / "a", ["weights"], weights=trained)["weights"]
    from_hook = export(arch, tmp_path / "b", ["weights"], weights=lambda arch, model: trained)["weights"]
    for path in (from_dict, from_hook):
        saved = torch.load(path, weights_only=True)
        assert all(torch.equal(saved[k], trained[k]) for k in trained)
    fresh = torch.load(export(arch, tmp_path / "c", ["weights"], seed=5)["weights"], weights_only=True)
    other = torch.load(export(arch, tmp_path / "d", ["weights"], seed=6)["weights"], weights_only=True)
    assert all(torch.equal(fresh[k], trained[k]) for k in trained)  # seeded like nas.build(arch, seed=5)
    assert not all(torch.equal(other[k], trained[k]) for k in trained)
    with pytest.raises(SpecError, match="do not fit"):
        export(arch.with_classes(4), tmp_path / "e", ["weights"], weights=trained)


def test_onnx_without_the_package_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # makes `import onnx` raise ImportError
    with pytest.raises(SpecError, match=r"pip install 'nas\[onnx\]'"):
        export(nas.zoo.load("b0").with_input(size=32), tmp_path, ["onnx"])


@pytest.mark.parametrize("layout", [".", "best"])
def test_cli_export_from_a_run_folder(layout, tmp_path, capsys):
    run = tmp_path / "run"
    arch = nas.zoo.load("b0").with_input(size=32).with_classes(5)
    (run / layout).mkdir(parents=True, exist_ok=True)
    nas.dump(arch, run / layout / "arch.yaml")
    trained = nas.build(arch, seed=42).state_dict()
    torch.save(trained, run / layout / "weights.pt")
    out = tmp_path / "out"
    assert main(["export", str(run), "--format", "py,yaml,weights", "-o", str(out), "--class-name", "B0"]) == 0
    assert "model.py has" in capsys.readouterr().out
    saved = torch.load(out / "weights.pt", weights_only=True)
    assert all(torch.equal(saved[k], trained[k]) for k in trained)  # the run's weights, not fresh ones
    assert "class B0(Network)" in (out / "model.py").read_text()
    assert nas.load(out / "arch.yaml").plan().input_shape == (3, 32, 32)


@pytest.mark.parametrize("argv,fragment", [
    (["export", "b0", "--format", "onxx", "-o", "{tmp}/o"], "did you mean 'onnx'"),
    (["export", "search_spaces/fbnet.yaml", "-o", "{tmp}/o"], "nas show"),
    (["export", "b0", "--class-name", "2fast", "-o", "{tmp}/o"], "not a valid Python class name"),
    (["export", "b0", "--weights", "{tmp}/none.pt", "-o", "{tmp}/o"], "no such weights file"),
    (["export", "b0", "--weights", "{weights}", "-o", "{tmp}/o"], "do not fit"),
    (["export", "b0", "--weights", "{file}", "-o", "{tmp}/o"], "not a weights file"),
    (["export", "b0", "-o", "{file}/sub"], "under a file"),
    (["export", "{tmp}", "-o", "{tmp}/o"], "not a run folder"),
])
def test_cli_bad_input(argv, fragment, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    other = tmp_path / "other.pt"
    torch.save(nas.build(nas.zoo.load("mobilenetv2").with_input(size=32)).state_dict(), other)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    argv = [a.format(tmp=tmp_path, weights=other, file=blocker) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1 and fragment in err, err


@pytest.mark.parametrize("key,value,fragment", [
    ("act", "relu'); import os #", "'act' = 'relu_); import os _' is not one of the op's enumerated values"),
    ("k", float("nan"), "'k' is not finite"),
    ("k", [3], "'k' has a value of type list that cannot be exported"),
    ("act", "relu\n", "'act' = 'relu_' is not one of the op's enumerated values"),
    ("bias", b"x", "'bias' has a value of type bytes that cannot be exported")])
def test_exporter_rejects_hostile_values_that_got_past_the_dsl(key, value, fragment, monkeypatch):
    """Defence in depth: a plan tampered with after validation still cannot put text into the source."""
    arch = nas.loads("name: t\ninput: {channels: 3, size: 16}\nclasses: 4\nstem: [{op: conv, k: 3, c: 8}]\n"
                     "stages: [{op: ir, k: 3, e: 2, c: 8, n: 1, s: 1}]\nhead: [{op: classifier}]\n")
    plan = arch.plan()
    plan.stem[0].spec[key] = value
    monkeypatch.setattr(type(arch), "plan", lambda self: plan)
    with pytest.raises(SpecError, match=re.escape(fragment)):
        python_source(arch, cost=Cost(0.0, 0))


def test_exporter_rejects_hostile_cell_states_that_got_past_the_dsl(monkeypatch):
    space = nas.load(ROOT / "search_spaces" / "darts.yaml").with_input(size=32)
    arch = space.resolve(space.sample(0))
    plan = arch.plan()
    live = next(cell for cell in plan.cells if cell.live)
    live.concat = live.concat + ["n0'], __import__('os').system('touch PWNED'), ['"]
    monkeypatch.setattr(type(arch), "plan", lambda self: plan)
    with pytest.raises(SpecError, match="cell state"):
        python_source(arch, cost=Cost(0.0, 0))


def test_cli_export_samples_a_space(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["--quiet", "export", str(ROOT / "search_spaces" / "fbnet.yaml"), "--sample", "2",
                 "--input-size", "64", "--format", "yaml", "-o", str(out)]) == 0
    space = nas.load(ROOT / "search_spaces" / "fbnet.yaml").with_input(size=64)
    assert nas.dsl.dumps(nas.load(out / "arch.yaml")) == nas.dsl.dumps(space.resolve(space.sample(2)))
    assert main(["export", "b0", "--seed", "-1", "-o", str(out)]) == 2
    assert "--seed: expected an integer seed from 0 to 2^32-1, got -1" in capsys.readouterr().err


# A small CNN for 3 classes of 12×12 grey stripes (horizontal, vertical, diagonal) on a bright background:
# mean ≈ 0.8, far from 0.5, so a model fed images without the training statistics would be far off.
STRIPES = """
name: stripes
input: {channels: 1, size: 16}
classes: 3
stem: [{op: conv, k: 3, c: 8, s: 1}]
stages:
  - {op: ir, k: 3, e: 2, c: 16, n: 1, s: 2}
head: [{op: classifier}]
"""


def _stripes(path: Path, n: int, seed: int) -> tuple:
    import numpy as np

    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    i, j = np.meshgrid(np.arange(12), np.arange(12), indexing="ij")
    patterns = np.stack([(i % 4 < 2), (j % 4 < 2), ((i + j) % 4 < 2)]).astype(np.float32)
    x = 200 + 40 * patterns[y] + rng.normal(0, 12, (n, 12, 12))
    x = np.clip(x, 0, 255).astype(np.uint8)
    np.savez(path, x=x, y=y)
    return x, y


@pytest.mark.slow  # trains, then a fresh process
def test_preprocessing_travels_with_the_exported_model(tmp_path, capsys):
    """Train on an npz whose mean is far from 0.5 at another size than the network's; the exported model.py,
    loaded where `import nas` fails, turns the raw held-out images into `nas eval`'s accuracy and loss."""
    import torch.nn.functional as F

    arch, train_file, held_out = tmp_path / "stripes.yaml", tmp_path / "train.npz", tmp_path / "held_out.npz"
    arch.write_text(STRIPES)
    _stripes(train_file, 300, seed=0)
    raw_x, raw_y = _stripes(held_out, 90, seed=1)
    run, out = tmp_path / "run", tmp_path / "export"
    assert main(["--quiet", "train", str(arch), "--data", "npz", "--data-root", str(train_file), "--size", "16",
                 "--epochs", "4", "--lr", "0.1", "-o", str(run)]) == 0
    record = nas.load(run / "arch.yaml").doc["preprocess"]
    assert record["size"] == 16 and record["channels"] == 1 and 0.75 < record["mean"][0] < 0.95
    assert main(["export", str(run), "--format", "py,yaml,weights,torchscript", "-o", str(out)]) == 0
    assert nas.load(out / "arch.yaml").doc["preprocess"] == record
    sidecar = json.loads((out / "preprocess.json").read_text())
    assert sidecar["preprocess"]["mean"] == record["mean"] and sidecar["input"]["shape"] == ["batch", 1, 16, 16]
    capsys.readouterr()
    assert main(["eval", str(run / "arch.yaml"), "--weights", str(run / "weights.pt"), "--data", "npz",
                 "--data-root", str(held_out), "--split", "all"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["accuracy"] > 0.9, report  # it learned, so the comparison below means something
    torch.save(torch.from_numpy(raw_x), out / "raw.pt")
    result = _run_standalone([out], tmp_path)[str(out)]
    assert "preprocess(images)" in result["doc"]
    logits = torch.load(out / "output.pt", weights_only=True)
    labels = torch.from_numpy(raw_y).long()
    assert (logits.argmax(1) == labels).float().mean().item() == pytest.approx(report["accuracy"])
    assert F.cross_entropy(logits, labels).item() == pytest.approx(report["loss"], rel=1e-4)


def test_readme_shows_the_exported_fbnet_c_as_it_is():
    """The README shows one whole exported model.py; it must be what the exporter writes today."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert python_source(nas.zoo.load("fbnet_c")).rstrip() in readme


@pytest.mark.parametrize("channels", [1, 3])
def test_docstring_says_grey_images_are_repeated_only_for_colour_networks(channels):
    """preprocess() repeats a grey image over the channels of a colour network; a grey network takes it as it is."""
    arch = nas.zoo.load("mobilenetv2").with_input(channels=channels, size=32).with_classes(10)
    record = {"size": 32, "channels": channels, "mean": [0.5] * channels, "std": [0.25] * channels}
    doc = ast.get_docstring(ast.parse(python_source(with_preprocess(arch, record), cost=Cost(0.0, 0))))
    said = " ".join(doc.split())
    assert ("repeats grey images" in said) == (channels == 3), said
    assert channels == 1 or "repeats grey images to 3 channels" in said
    assert "resizes them (bilinear, antialiased) to 32 x 32" in said
