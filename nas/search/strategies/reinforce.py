"""REINFORCE over independent categorical policies, one per choice (Williams 1992; NASNet's search method,
Zoph et al. 2018, with its LSTM controller replaced by independent logits: each choice has its own logit
vector and is sampled independently, given which choices are active).

For a proposal with picks a_c on the active choices c and reward R, every picked choice's logits θ_c move by

    θ_c += lr · [ (R − b) · ∇ log π_c(a_c) + β · ∇ H(π_c) ]      ∇_θ log π(a) = onehot(a) − π
                                                                  ∇_θ H(π)   = −π ⊙ (log π + H(π))

with b a moving-average baseline, b ← d·b + (1 − d)·R (started at the first reward), and an entropy bonus β
that keeps the policy from collapsing early. The reward is the accuracy, or MnasNet's
acc × (cost / target)^w when `reward_metric` and `reward_target` are set (w = −0.07 in the paper); a rejected
candidate (it broke a constraint and never trained) gets the reward `penalty`; a failed trial gives no update.
"""
from __future__ import annotations

import numpy as np

from nas.recipe import METRICS, Option, parse_quantity
from nas.search.strategies.base import Outcome, Strategy


class Reinforce(Strategy):
    OPTIONS = {
        "lr": Option(0.3, float, "policy learning rate > 0", lambda v: v > 0),
        "baseline_decay": Option(0.8, float, "moving-average decay in [0, 1)", lambda v: 0 <= v < 1),
        "entropy": Option(0.01, float, "entropy bonus ≥ 0", lambda v: v >= 0),
        "penalty": Option(0.0, float, "reward of a candidate that breaks a constraint"),
        "reward_metric": Option(None, str, "flops, params or latency: MnasNet's acc × (cost/target)^w",
                                choices=(None, "flops", "params", "latency")),
        "reward_target": Option(None, (str, float), "the cost target T of the MnasNet reward, e.g. 20M"),
        "reward_w": Option(-0.07, float, "the exponent w of the MnasNet reward (≤ 0)", lambda v: v <= 0),
    }

    def __init__(self, *args, costs=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.rng = np.random.default_rng(self.seed)
        self.logits = {name: np.zeros(len(c)) for name, c in self.space.choices().items()}
        self.baseline: float | None = None
        self.proposed: dict[int, dict[str, str]] = {}
        self.costs = costs  # callable: assignment -> {"flops":..., "params":..., "latency":...} (for the reward)
        metric = self.options["reward_metric"]
        if metric is not None and self.options["reward_target"] is None:
            raise ValueError("reward_metric needs reward_target")
        self.target = None if metric is None else parse_quantity(self.options["reward_target"], None,
                                                                 f"{metric} target")
        assert metric is None or metric in METRICS

    def policy(self, name: str) -> np.ndarray:
        z = self.logits[name] - self.logits[name].max()
        p = np.exp(z)
        return p / p.sum()

    def _propose(self, number: int) -> dict[str, str]:
        def decide(name, choice):
            return choice.keys[int(self.rng.choice(len(choice), p=self.policy(name)))]

        picks = self.space.walk(decide)
        self.proposed[number] = picks
        return picks

    def reward(self, outcome: Outcome, picks: dict[str, str]) -> float | None:
        if outcome.status == "rejected":
            return self.options["penalty"]
        value = self.score(outcome)
        if value is None:
            return None
        metric = self.options["reward_metric"]
        if metric is not None:
            cost = self.costs(picks)[metric]
            value = value * (cost / self.target) ** self.options["reward_w"]
        return value

    def tell(self, number: int, outcome: Outcome) -> None:
        picks = self.proposed.pop(number)
        reward = self.reward(outcome, picks)
        if reward is None:
            return
        if self.baseline is None:
            self.baseline = reward
        advantage = reward - self.baseline
        self.baseline = self.options["baseline_decay"] * self.baseline + (1 - self.options["baseline_decay"]) * reward
        choices = self.space.choices()
        for name, key in picks.items():
            p = self.policy(name)
            onehot = np.zeros_like(p)
            onehot[choices[name].keys.index(key)] = 1.0
            logp = np.log(p + 1e-12)
            entropy = -(p * logp).sum()
            grad_entropy = -p * (logp + entropy)
            self.logits[name] = self.logits[name] + self.options["lr"] * (
                advantage * (onehot - p) + self.options["entropy"] * grad_entropy)
