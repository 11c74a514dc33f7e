"""Weights, TorchScript and ONNX for an Arch's built model."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from nas.dsl.errors import SpecError
from nas.dsl.nodes import Arch


def model_with_weights(arch: Arch, weights: Any = None, seed: int = 0):
    """`nas.build(arch)` holding `weights`, in eval mode. `weights` is None (fresh, initialized with `seed`),
    a path to a state_dict file (loaded with `weights_only=True`), a state_dict, or a callable
    `(arch, model) -> state_dict` — the hook for weights inherited from a supernet."""
    import nas
    from nas.train import check_state, load_weights

    model = nas.build(arch, seed=seed)
    if callable(weights):
        weights = weights(arch, model)
    if isinstance(weights, (str, Path)):
        load_weights(weights, model)
    elif weights is not None:
        if not hasattr(weights, "keys"):
            raise SpecError(f"weights must be a state_dict, a path or a callable, not {type(weights).__name__}")
        check_state(dict(weights), model, "weights")
        model.load_state_dict(weights)
    return model.eval()


def write_torchscript(model, example, path: Path) -> None:
    """TorchScript by `torch.jit.trace` (every op's forward is static, and tracing needs no annotations in the
    copied op code; `torch.jit.script` is deprecated in torch 2.13). The traced module is checked against the
    model on a second batch size, since tracing can bake in shapes. Torch 2.13 marks torch.jit deprecated in
    favour of torch.export, but TorchScript is what many deployment runtimes load, so that notice is muted."""
    import torch

    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.\w+.* is deprecated", category=DeprecationWarning)
        traced = torch.jit.trace(model, example, check_trace=False)
        other = torch.cat([example, -example]) if example.shape[0] == 1 else example[:1]
        for x in (example, other):
            if not torch.allclose(traced(x), model(x), atol=1e-5, rtol=1e-4):
                raise RuntimeError("the traced TorchScript module disagrees with the model")
    traced.save(str(path))


def write_onnx(model, example, path: Path) -> float | None:
    """ONNX, opset 17, with a dynamic batch axis; checked against torch when onnxruntime is installed.

    Uses torch's TorchScript-based exporter (`dynamo=False`): the torch.export-based one that torch 2.13 makes
    the default needs `onnxscript`, which the `nas[onnx]` extra does not pull in, while this one works offline
    with onnx alone. Its deprecation notice is muted."""
    import torch

    try:
        import onnx
    except ImportError:
        raise SpecError("ONNX export needs the onnx package", "--format onnx", "pip install 'nas[onnx]'") from None
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message="Constant folding")  # strided slices are kept as they are
        torch.onnx.export(model, (example,), str(path), input_names=["image"], output_names=["logits"],
                          dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17,
                          dynamo=False)
    onnx.checker.check_model(str(path))
    return check_onnx(model, example, path)


def check_onnx(model, example, path: Path, atol: float = 1e-4) -> float | None:
    """Max |ONNX − torch| on `example` when onnxruntime is installed (None when it is not); raises above atol."""
    try:
        import onnxruntime
    except ImportError:
        return None
    import numpy as np
    import torch

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"image": example.numpy()})[0]
    with torch.no_grad():
        want = model(example).numpy()
    error = float(np.abs(got - want).max())
    if error > atol:
        raise RuntimeError(f"the ONNX graph disagrees with torch by {error:.2e}")
    return error
