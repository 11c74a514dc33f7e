"""Space → supernet: the network holding every candidate, its θ, and the map back to derived networks."""
from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from nas.builder import build, init_weights
from nas.dsl.errors import SpecError
from nas.dsl.nodes import Choice, Space
from nas.supernet.blocks import BlockSupernet
from nas.supernet.cells import CellNode, CellSupernet, unused_weight
from nas.supernet.mixed import MODES, ArchParams, MixedOp, Sample
from nas.supernet.names import escape


class Supernet(nn.Module):
    """`net` holds the weights (module paths follow the choice names), `arch` the logits θ.

    `mode`: mixture | single_path | softmax (see `nas.supernet.mixed`); `cells`: slots | edges (cell spaces).
    """

    def __init__(self, space: Space, mode: str = "mixture", cells: str = "slots", affine: bool = True,
                 seed: int | None = 0):
        super().__init__()
        if not space.choices():
            raise SpecError(f"space '{space.name}' has no choices: there is nothing to search", space.file,
                            "search a space with choices, or train the architecture with `nas train`")
        if mode not in MODES:
            raise SpecError(f"unknown supernet mode '{mode}'", hint="mixture, single_path or softmax")
        self.space, self.mode, self.temperature = space, mode, 1.0
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            self.net = CellSupernet(space, cells, affine) if space.is_cell else BlockSupernet(space)
            init_weights(self.net)
        options = self.net.arch_options(space) if space.is_cell else {n: c.keys for n, c in space.choices().items()}
        self.arch = ArchParams(options)

    @property
    def parametrization(self) -> str:
        return getattr(self.net, "parametrization", "slots")

    def weights(self) -> list[nn.Parameter]:
        return list(self.net.parameters())

    def draw(self, generator: torch.Generator | None = None) -> Sample:
        return self.arch.sample(self.mode, self.temperature, generator)

    def forward(self, x: torch.Tensor, sample: Sample | None = None) -> torch.Tensor:
        return self.net(x, sample if sample is not None else self.draw())

    # -- fixed architectures inside the supernet ----------------------------------------------------
    def fixed(self, assignment: Mapping[str, str]) -> Sample:
        """One-hot sample that runs exactly `space.resolve(assignment)`."""
        return fixed_sample(self.space, assignment)

    def inherited_state(self, assignment: Mapping[str, str]) -> dict[str, torch.Tensor]:
        """The state_dict of `build(space.resolve(assignment))` taken from the supernet's weights: the picked
        candidate's path segment is dropped, everything unpicked is left out."""
        model = build(self.space.resolve(assignment))
        derived = model.state_dict()
        norms = {path for path, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}
        renames = self._renames(assignment)
        out: dict[str, torch.Tensor] = {}
        for key, value in self.net.state_dict().items():
            # two slots that pick the same (source, op) edge both start from its weights
            targets = [new + key[len(old):] for old, new in renames if key.startswith(old)] or [key]
            out.update((new, value) for new in targets if new in derived)
        for reader, (width, channels) in self._channel_maps(assignment).items():
            for name in [k for k in out if k.startswith(reader + ".")]:
                t = out[name]
                if t.dim() >= 2 and t.shape[1] == width and derived[name].shape[1] == len(channels):
                    out[name] = t[:, channels]
        for name in set(derived) - set(out):  # a norm the search ran without scale/shift: the identity affine
            if name.endswith((".weight", ".bias")) and name.rsplit(".", 1)[0] in norms:
                out[name] = torch.ones_like(derived[name]) if name.endswith(".weight") else torch.zeros_like(derived[name])
        missing = set(derived) - set(out)
        if missing:  # an internal error: the supernet's layout does not match the builder's
            raise RuntimeError(f"inheritance misses {sorted(missing)[:3]}")
        return out

    def _renames(self, assignment: Mapping[str, str]) -> list[tuple[str, str]]:
        renames = []
        options = {n: c.keys for n, c in self.space.choices().items()}
        for path, module in self.net.named_modules():
            if isinstance(module, MixedOp):
                renames.append((f"{path}.candidates.{module.picked_label(assignment, options)}.", f"{path}."))
            elif isinstance(module, CellNode):
                for t, slot in enumerate(module.slots):
                    source = assignment[slot.source.name] if isinstance(slot.source, Choice) else slot.source
                    op = assignment[slot.op.name] if isinstance(slot.op, Choice) else "fixed"
                    renames.append((f"{path}.edges.{escape(source)}.{escape(op)}.", f"{path}.op{t}."))
        return renames

    def _channel_maps(self, assignment: Mapping[str, str]) -> dict[str, tuple[int, list[int]]]:
        """Readers of a masked (`concat: unused`) cell output keep the channels of its unused nodes only:
        the next cell's pre1, the one after's pre0, and the head after the last cell."""
        if not self.space.is_cell:
            return {}
        net: CellSupernet = self.net
        sample = fixed_sample(self.space, assignment)
        maps, last = {}, len(net.kinds) - 1
        for k, kind in enumerate(net.kinds):
            spec = net.cell_specs[kind]
            if spec["concat"] != "unused":
                continue
            nodes, C = len(spec["nodes"]), net.widths[k]
            kept = [m for m in range(nodes) if unused_weight(spec, m, sample) > 0.5]
            channels = [m * C + i for m in kept for i in range(C)]
            readers = ([f"body.{k + 1}.pre1"] if k + 1 <= last else ["head"]) + \
                ([f"body.{k + 2}.pre0"] if k + 2 <= last else [])
            for reader in readers:
                maps[reader] = (nodes * C, channels)
        return maps


def fixed_sample(space: Space, assignment: Mapping[str, str]) -> Sample:
    """One-hot weights over the space's own choices (either cell parametrization runs it as slots)."""
    index = {n: c.keys.index(assignment[n]) for n, c in space.choices().items()}
    weights = {n: torch.nn.functional.one_hot(torch.tensor(i), len(space.choices()[n])).float()
               for n, i in index.items()}
    return Sample(weights, index)
