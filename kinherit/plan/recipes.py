"""The recipes `kinherit plan` compares, each with its total FLOPs counted on models built on the meta device.

FLOPs are those still to spend: training FLOPs per token (`metrics.flops`, 6·N_matmul + attention) × tokens, at
the size of each stage, plus a KI teacher's forward passes over the whole run (an upper bound: `auto` may stop it
earlier). An existing model's own training is sunk and not counted. Tokens = max_steps × batch × grad-accum ×
seq_len (one process).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

from kinherit.arch import FAMILIES
from kinherit.arch.spec import DEFAULT_EXPERTS_PER_TOKEN, DEFAULT_NUM_EXPERTS
from kinherit.config import WSD, GrowthStage, ModelConfig, RunConfig, growth_steps
from kinherit.metrics.flops import flops_per_token
from kinherit.plan.have import Existing

OPTIMAL_TOKENS_PER_PARAM = 20.0
"""Chinchilla's compute-optimal ratio (Hoffmann et al. 2022): ≈ 20 training tokens per parameter."""
SIZE_KEYS = ("hidden_size", "num_layers", "num_heads", "num_kv_heads", "intermediate_size")


@dataclass(frozen=True)
class Target:
    """The configured run: its final model (after any growth stages), vocabulary, block length and budget."""

    config: RunConfig
    model: ModelConfig
    vocab: int
    steps: int
    step_tokens: int

    @property
    def tokens(self) -> int:
        return self.steps * self.step_tokens


@dataclass(frozen=True)
class Recipe:
    """One row: what to run (`config`, a ready `pretrain` config), its FLOPs, the law it is predicted by and the
    setting it is predicted at (N, τ, τ_base)."""

    name: str
    law: str | None
    flops: float
    setting: dict[str, float | None]
    details: str
    config: dict[str, Any]
    before: list[str] = field(default_factory=list)  # commands to run first (kinherit grow)


def meta_model(sizes: ModelConfig, vocab: int, seq_len: int) -> torch.nn.Module:
    """A fresh model of `sizes` on the meta device: shapes only, nothing allocated."""
    family = FAMILIES.lookup(sizes.family)
    config = family.build_config(sizes, vocab, sizes.positions(seq_len))
    auto = AutoModelForMaskedLM if family.task == "masked" else AutoModelForCausalLM
    with torch.device("meta"):
        return auto.from_config(config)


def non_embedding(model: torch.nn.Module) -> int:
    """Parameters other than the token embedding and the LM head, each tensor once."""
    skip = {
        id(p)
        for module in (model.get_input_embeddings(), model.get_output_embeddings())
        if module is not None
        for p in module.parameters()
    }
    return sum({id(p): p.numel() for p in model.parameters() if id(p) not in skip}.values())


def cost(sizes: ModelConfig, target: Target) -> tuple[int, int, int]:
    """(non-embedding params, training FLOPs per token, forward FLOPs per token) of `sizes`."""
    model = meta_model(sizes, target.vocab, target.config.data.seq_len)
    per_token = flops_per_token(model, target.config.data.seq_len)
    return non_embedding(model), per_token.train, per_token.forward


def _sized(target: Target, **sizes: Any) -> ModelConfig:
    return target.model.model_copy(update=sizes)


def _run_config(target: Target, model: ModelConfig, **sections: Any) -> dict[str, Any]:
    """The configured run's raw config with another model (and sections) and no growth stages."""
    raw = target.config.model_dump(by_alias=True, mode="json", exclude_unset=True)
    raw["model"] = model.model_dump(by_alias=True, mode="json", exclude_unset=True)
    raw.pop("growth", None)
    raw.pop("teacher", None)
    return {**raw, **sections}


def _from_folder(target: Target, folder: str) -> dict[str, Any]:
    """The configured run started from the model `kinherit grow` writes to `folder`, with its tokenizer."""
    raw = _run_config(target, target.model)
    raw["data"] = {**raw["data"], "tokenizer": {"path": folder}}
    return {**raw, "model": {"from": folder}}


def scratch(target: Target) -> Recipe:
    n, train, _ = cost(target.model, target)
    return Recipe(
        "scratch (configured)",
        None,
        float(train * target.tokens),
        {"n": n, "tau": target.tokens / n},
        f"{_shape(target.model)}, {n:,} non-embedding params, {target.steps:,} steps, τ = {target.tokens / n:.3g}",
        _run_config(target, target.model),
    )


def compute_optimal(target: Target) -> Recipe:
    """Scratch at the width (same depth and head size) whose steps at the configured FLOPs give the nearest τ to
    OPTIMAL_TOKENS_PER_PARAM (log distance)."""
    model = target.model
    head_dim, budget = model.hidden_size // model.num_heads, scratch(target).flops

    @functools.cache
    def at(heads: int) -> tuple[ModelConfig, int, int]:
        """(sizes, non-embedding params, steps at the configured FLOPs) with `heads` heads of the same size."""
        scale = heads / model.num_heads
        kv = None if model.num_kv_heads is None else max(1, round(model.num_kv_heads * scale))
        ffn = None if model.intermediate_size is None else 8 * max(1, round(model.intermediate_size * scale / 8))
        sizes = _sized(
            target,
            hidden_size=heads * head_dim,
            num_heads=heads,
            num_kv_heads=kv if kv is not None and heads % kv == 0 else None,
            intermediate_size=ffn,
        )
        n, train, _ = cost(sizes, target)
        return sizes, n, max(1, round(budget / (train * target.step_tokens)))

    def tau(heads: int) -> float:
        _, n, steps = at(heads)
        return steps * target.step_tokens / n

    low, high = 1, 64 * model.num_heads
    while high - low > 1:  # τ falls as the model widens: the widest with τ ≥ 20
        mid = (low + high) // 2
        low, high = (mid, high) if tau(mid) >= OPTIMAL_TOKENS_PER_PARAM else (low, mid)
    best = min((low, high), key=lambda h: abs(math.log(tau(h) / OPTIMAL_TOKENS_PER_PARAM)))
    sizes, n, steps = at(best)
    train = dict(target.config.train, max_steps=steps)
    return Recipe(
        "scratch at the compute-optimal size",
        "frontier",
        budget,
        scratch(target).setting,  # the law is indexed by the configured run it replaces
        f"{_shape(sizes)}, {n:,} non-embedding params, {steps:,} steps, τ = {steps * target.step_tokens / n:.3g} "
        f"(same FLOPs)",
        _run_config(target, sizes, train=train),
    )


def _staged(target: Target, name: str, law: str, stages: list[ModelConfig]) -> Recipe:
    """A staged run through `stages` (the start, then the model after each growth), growing at `at_step: auto`
    (stage k of n at 0.8·k/n of max_steps), WSD; its FLOPs summed over the stages."""
    at = growth_steps([GrowthStage(at_step="auto") for _ in stages[1:]], target.steps)
    starts, ends = [0, *at], [*at, target.steps]
    flops = sum(cost(m, target)[1] * (end - start) * target.step_tokens for m, start, end in zip(stages, starts, ends))
    n = cost(target.model, target)[0]
    growth = [
        {"at_step": b, **{k: getattr(m, k) for k in SIZE_KEYS if getattr(m, k) != getattr(before, k)}}
        for b, before, m in zip(at, stages, stages[1:])
    ]
    return Recipe(
        name,
        law,
        flops,
        {"n": n, "tau": target.tokens / n},
        " → ".join(f"{_shape(m)} (from step {s:,})" for m, s in zip(stages, starts)) + ", WSD",
        _run_config(target, stages[0], growth=growth, train=dict(target.config.train, lr_scheduler_type=WSD)),
    )


def staged(target: Target) -> Recipe | None:
    """The depth recipe (configs/staged.yaml's schedule, bench `depth@0.8`): 1 → L/2 → L layers at `at_step: auto`
    (0.4, 0.8 of max_steps), WSD; 1 → L for L < 4; None for L = 1."""
    layers = target.model.num_layers
    if layers < 2:
        return None
    depths = [1, *([layers // 2] if layers >= 4 else []), layers]
    return _staged(target, "staged growth, depth", "depth@0.8", [_sized(target, num_layers=d) for d in depths])


def staged_width_depth(target: Target) -> Recipe | None:
    """Width and depth (bench `both@0.8`): d/2 wide (half the heads and FFN) × 1 layer → d/2 × L/2 at 0.4 of
    max_steps → d × L at 0.8, WSD; None where the heads (or key/value heads) do not halve or L < 4."""
    model = target.model
    halves = {k: getattr(model, k) for k in ("hidden_size", "num_heads", "num_kv_heads", "intermediate_size")}
    if model.num_layers < 4 or any(v is not None and v % 2 for v in halves.values()):
        return None
    half = {k: None if v is None else v // 2 for k, v in halves.items()}
    stages = [_sized(target, **half, num_layers=1), _sized(target, **half, num_layers=model.num_layers // 2)]
    return _staged(target, "staged growth, width and depth", "both@0.8", [*stages, model])


def _within(have: Existing, target: Target, strictly: bool) -> bool:
    """`have` can be grown into the target: no size larger (and, `strictly`, some size smaller)."""
    pairs = [(v, getattr(target.model, k)) for k, v in have.sizes.items() if getattr(target.model, k) is not None]
    return all(v <= t for v, t in pairs) and (not strictly or any(v < t for v, t in pairs))


def _grow_flags(target: Target) -> str:
    return " ".join(
        f"--{k.replace('_', '-')} {getattr(target.model, k)}" for k in SIZE_KEYS if getattr(target.model, k) is not None
    )


def _base_tau(have: Existing, target: Target) -> float | None:
    n = cost(_sized(target, **{k: v for k, v in have.sizes.items() if v is not None}), target)[0]
    return None if have.tokens is None else have.tokens / n


def grow_from(have: Existing, target: Target) -> Recipe | None:
    """`kinherit grow HAVE` to the configured shape, then train it for the budget (LR × growth_lr_factor)."""
    if not _within(have, target, strictly=True):
        return None
    base = scratch(target)
    out = f"{target.config.out}-grown"
    return Recipe(
        f"grow from {have.path}",
        "grow",
        base.flops,
        {**base.setting, "base_tau": _base_tau(have, target)},
        f"grown to {_shape(target.model)}; base trained on {_tokens(have)}",
        _from_folder(target, out),
        [f"kinherit grow {have.path} {out} {_grow_flags(target)}"],
    )


def ki_from(have: Existing, target: Target) -> Recipe:
    """Knowledge inheritance: the configured model taught by HAVE over the whole run (teacher forwards counted)."""
    base = scratch(target)
    forward = cost(_sized(target, **{k: v for k, v in have.sizes.items() if v is not None}), target)[2]
    return Recipe(
        f"KI from {have.path}",
        "ki",
        base.flops + forward * target.tokens,
        {**base.setting, "base_tau": _base_tau(have, target)},
        f"teacher trained on {_tokens(have)}, forward passes over the whole run counted",
        _run_config(target, target.model, teacher={"path": have.path}),
    )


def upcycle_from(have: Existing, target: Target) -> Recipe | None:
    """Dense → MoE: HAVE grown to the configured shape and upcycled into its family's mixture of experts (the
    default experts and top-k of `model:`), trained for the budget at its active FLOPs."""
    moe = FAMILIES.lookup(target.model.family).upcycle
    if moe is None or not _within(have, target, strictly=False):
        return None
    family = next(f.name for f in FAMILIES.values() if moe.model_type in f.model_types)
    sizes = _sized(target, family=family)
    n, train, _ = cost(sizes, target)
    out = f"{target.config.out}-upcycled"
    return Recipe(
        f"dense → MoE ({family}) from {have.path}",
        "upcycle",
        float(train * target.tokens),
        {"n": n, "tau": target.tokens / n, "base_tau": _base_tau(have, target)},
        f"{family} of the configured shape ({n:,} non-embedding params in all its experts); Δ loss measured against "
        "a scratch MoE of the same shape",
        _from_folder(target, out),
        [
            f"kinherit grow {have.path} {out} {_grow_flags(target)} --num-experts {DEFAULT_NUM_EXPERTS} "
            f"--experts-per-token {DEFAULT_EXPERTS_PER_TOKEN}"
        ],
    )


def _shape(sizes: ModelConfig) -> str:
    return f"{sizes.family} {sizes.hidden_size}×{sizes.num_layers}"


def _tokens(have: Existing) -> str:
    return "unknown tokens (no run record)" if have.tokens is None else f"{have.tokens:,} tokens ({have.record})"
