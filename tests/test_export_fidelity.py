"""Export fidelity beyond eval-mode outputs: every hyper-parameter that only shows in training (norm eps and
momentum, dropout p, drop-path rate, the activation's type) is the same in the exported standalone `Net` as in
`nas.build`'s module, matched module by module in order, and one train-mode step from the same weights, seed and
input gives the same outputs, gradients and updated norm statistics."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import nas
from nas.cost.flops import Cost
from nas.export import python_source
from nas.train import set_drop_path

# dropout + drop-path (EfficientNet-B0), NASNet cells with dropout, SE + hardswish (MobileNetV3), at small inputs
CASES = [("efficientnet_b0", 64), ("nasnet_a_mobile", 64), ("mobilenetv3_large", 64)]
ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.SiLU, nn.Hardswish, nn.GELU, nn.Sigmoid, nn.Hardsigmoid, nn.Identity)


def _settings(model: nn.Module) -> list[tuple]:
    """Each module's training-time hyper-parameters, in module order (names left out: the export may rename)."""
    found = []
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._NormBase):
            found.append((type(module).__name__, module.eps, module.momentum, module.affine,
                          module.track_running_stats))
        elif isinstance(module, nn.Dropout):
            found.append(("Dropout", module.p))
        elif isinstance(module, ACTIVATIONS):
            found.append((type(module).__name__,))
        if hasattr(module, "drop_path_rate"):
            found.append(("drop_path", module.drop_path_rate))
    return found


def _pair(name: str, size: int):
    arch = nas.zoo.load(name).with_input(size=size)
    namespace: dict = {}
    exec(compile(python_source(arch, cost=Cost(0.0, 0)), "model.py", "exec"), namespace)
    reference = nas.build(arch, seed=0)
    exported = namespace["Net"]()
    exported.load_state_dict(reference.state_dict())
    for model in (reference, exported):
        set_drop_path(model, 0.3)  # what `nas train --drop-path 0.3` does
    return arch, reference, exported


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("name,size", CASES)
def test_exported_net_has_the_same_training_hyper_parameters(name, size):
    _, reference, exported = _pair(name, size)
    ours, theirs = _settings(exported), _settings(reference)
    assert ours == theirs
    kinds = {entry[0] for entry in theirs}
    assert "Dropout" in kinds and "BatchNorm2d" in kinds  # the comparison saw what it is about
    if name == "efficientnet_b0":
        assert {e for e in theirs if e[0] == "BatchNorm2d"} == {("BatchNorm2d", 1e-3, 0.01, True, True)}
        rates = [e[1] for e in theirs if e[0] == "drop_path"]
        assert len(rates) == 16 and rates[-1] == pytest.approx(0.3)  # linear in depth, 0.3 at the last block
    if name == "mobilenetv3_large":
        assert {"Hardswish", "Hardsigmoid"} <= kinds


@pytest.mark.parametrize("name,size", CASES)
def test_one_train_mode_step_gives_equal_gradients(name, size):
    arch, reference, exported = _pair(name, size)
    x = torch.randn(4, *arch.plan().input_shape, generator=torch.Generator().manual_seed(1))
    target = torch.arange(4) % arch.plan().classes
    results = []
    for model in (reference, exported):
        model.train()
        torch.manual_seed(123)  # the same dropout and drop-path masks, if both draw them in the same order
        loss = nn.functional.cross_entropy(model(x), target)
        loss.backward()
        grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
        buffers = {k: b.clone() for k, b in model.named_buffers()}
        results.append((loss.detach(), grads, buffers))
    (loss_a, grads_a, buf_a), (loss_b, grads_b, buf_b) = results
    assert torch.equal(loss_a, loss_b)
    assert grads_a.keys() == grads_b.keys() and len(grads_a) == len(list(reference.parameters()))
    for key in grads_a:
        assert torch.allclose(grads_a[key], grads_b[key], rtol=1e-5, atol=1e-7), key
    for key in buf_a:  # running means/vars moved by the same momentum
        assert torch.allclose(buf_a[key].float(), buf_b[key].float(), rtol=1e-6, atol=1e-8), key
