"""Architecture logits θ, how one forward pass samples them, and the mixed op.

Every choice of the space has a logit vector θ_c (one entry per option). A forward pass draws a `Sample`:

- `mixture`: w_c = softmax((θ_c + g) / τ) with Gumbel noise g (FBNet, GDAS-soft); every candidate runs and
  the mixed op returns Σ_combo w(combo) · candidate(x).
- `softmax`: w_c = softmax(θ_c), no noise (DARTS).
- `single_path`: one option per choice, i = argmax(θ_c + g); w_c = onehot(i) − softmax(·).detach() +
  softmax(·) (straight-through): the forward value is exactly the sampled child, the backward pass still
  reaches every logit of the choice (ProxylessNAS / GDAS).
- fixed: a given assignment as one-hot weights, no gradient to θ (`nas.supernet.supernet.fixed_sample`).

A candidate that depends on several choices (a layer whose kernel, expansion and input width are separate
choices) weighs w(combo) = Π_c w_c[combo_c]: the choices are sampled independently, so this is their joint.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from nas.supernet.names import combo_label, escape

MODES = ("mixture", "single_path", "softmax")


@dataclass
class Sample:
    weights: dict[str, torch.Tensor]  # choice name -> weight per option
    index: dict[str, int] | None = None  # choice name -> the one option that runs (single_path, fixed)


class ArchParams(nn.Module):
    """θ: one logit vector per choice, in a ParameterDict under escaped choice names."""

    def __init__(self, options: Mapping[str, tuple[str, ...]]):
        super().__init__()
        self.options = {name: tuple(keys) for name, keys in options.items()}
        self.logits = nn.ParameterDict({escape(n): nn.Parameter(torch.zeros(len(k))) for n, k in self.options.items()})

    def __getitem__(self, name: str) -> nn.Parameter:
        return self.logits[escape(name)]

    def names(self) -> list[str]:
        return list(self.options)

    def probs(self) -> dict[str, torch.Tensor]:
        return {n: F.softmax(self[n], -1) for n in self.options}

    def argmax(self) -> dict[str, str]:
        return {n: self.options[n][int(self[n].argmax())] for n in self.options}

    def draw(self, generator: torch.Generator | None = None) -> dict[str, str]:
        """One architecture from the learned distribution (independent categorical per choice)."""
        return {n: self.options[n][int(torch.multinomial(F.softmax(self[n].detach(), -1), 1, generator=generator))]
                for n in self.options}

    def as_json(self) -> dict[str, dict[str, float]]:
        return {n: dict(zip(self.options[n], self[n].detach().tolist())) for n in self.options}

    def sample(self, mode: str, temperature: float = 1.0, generator: torch.Generator | None = None) -> Sample:
        """Draw the weights of one forward pass; the Gumbel noise comes from `generator` (a CPU generator, the
        same stream on every data-parallel worker) or, without one, from torch's global RNG."""
        if mode == "softmax":
            return Sample(self.probs())
        if mode not in ("mixture", "single_path"):
            raise ValueError(f"unknown sampling mode {mode!r}")
        weights, index = {}, {} if mode == "single_path" else None
        for name in self.options:
            logits = self[name]
            if generator is None:
                gumbel = -torch.empty_like(logits).exponential_().log()
            else:
                gumbel = -torch.empty(logits.shape).exponential_(generator=generator).log().to(logits)
            soft = F.softmax((logits + gumbel) / temperature, -1)
            if index is None:
                weights[name] = soft
            else:
                i = int(soft.argmax())
                weights[name] = F.one_hot(torch.tensor(i), len(soft)).to(soft) - soft.detach() + soft
                index[name] = i
        return Sample(weights, index)


def _fit(y: torch.Tensor, width: int) -> torch.Tensor:
    """Zero-pad the channels up to `width` (width choices: narrower candidates pad, readers slice)."""
    return y if y.shape[1] == width else F.pad(y, (0, 0, 0, 0, 0, width - y.shape[1]))


class MixedOp(nn.Module):
    """One unit of the network whose op depends on `deps` (choice names): a candidate per combination.

    Candidates live under `<unit path>.<combo label>`, so a derived network finds its weights by dropping
    that one path segment. Candidates may read fewer channels than arrive (the first `in_width`, a width
    choice upstream) and write fewer than the widest (zero-padded to `out_width`).

    `depth = (choice, on)` gates a layer that only exists for some options of a depth choice: the output is
    w_on · op(x) + w_off · x with w_on the weight of the options that keep the layer.
    """

    def __init__(self, deps: tuple[str, ...], candidates: dict[tuple[int, ...], tuple[tuple[str, ...], nn.Module, int]],
                 out_width: int, depth: tuple[str, list[bool]] | None = None):
        super().__init__()
        self.deps = deps
        self.out_width = out_width
        self.labels = {combo: combo_label(keys) for combo, (keys, _, _) in candidates.items()}
        self.in_widths = {combo: in_width for combo, (_, _, in_width) in candidates.items()}
        self.candidates = nn.ModuleDict({self.labels[c]: module for c, (_, module, _) in candidates.items()})
        self.depth = depth
        if depth is not None:
            self.register_buffer("depth_on", torch.tensor(depth[1], dtype=torch.float32), persistent=False)

    def run(self, combo: tuple[int, ...], x: torch.Tensor) -> torch.Tensor:
        width = self.in_widths[combo]
        return _fit(self.candidates[self.labels[combo]](x if x.shape[1] == width else x[:, :width]), self.out_width)

    def weight(self, combo: tuple[int, ...], sample: Sample) -> torch.Tensor:
        w = None
        for dep, i in zip(self.deps, combo):
            w = sample.weights[dep][i] if w is None else w * sample.weights[dep][i]
        return w

    def mixed(self, x: torch.Tensor, sample: Sample) -> torch.Tensor:
        if sample.index is not None:
            combo = tuple(sample.index[d] for d in self.deps)
            return self.weight(combo, sample) * self.run(combo, x)
        out = None
        for combo in self.labels:
            y = self.weight(combo, sample) * self.run(combo, x)
            out = y if out is None else out + y
        return out

    def forward(self, x: torch.Tensor, sample: Sample) -> torch.Tensor:
        if self.depth is None:
            return self.mixed(x, sample)
        name, _ = self.depth
        w = sample.weights[name]
        w_on, w_off = (w * self.depth_on).sum(), (w * (1 - self.depth_on)).sum()
        if sample.index is not None and not self.depth_on[sample.index[name]]:
            return w_off * x  # the sampled depth ends before this layer: it does not run
        return w_on * self.mixed(x, sample) + w_off * x

    def picked_label(self, assignment: Mapping[str, str], options: Mapping[str, tuple[str, ...]]) -> str:
        return self.labels[tuple(options[d].index(assignment[d]) for d in self.deps)]
