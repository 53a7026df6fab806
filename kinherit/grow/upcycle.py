"""Sparse upcycling: a dense decoder's MLP copied into every expert of a mixture of experts.

Komatsuzaki et al. 2022, Sparse Upcycling: Training Mixture-of-Experts from Dense Checkpoints,
https://arxiv.org/abs/2212.05055. The dense growth (width, depth) runs first; then, in every layer,

    experts.gate_up_proj[e] = [gate_proj; up_proj]     (E, 2F, H)
    experts.down_proj[e]    = s · down_proj             (E, H, F)
    gate.weight             = router init               (E, H)

The block computes Σ_{e∈topk} w_e · expert_e(x) with the top-k softmax weights renormalised to
Σ w_e = 1 (Mixtral always; qwen2_moe / qwen3_moe with `norm_topk_prob: true`, which the target sets:
their default `false` would scale the MLP by the selected probability mass, a token-dependent
factor). Identical experts then give Σ w_e · MLP(x) = MLP(x) exactly, for any router, so s = 1.
qwen2_moe adds a shared expert behind a sigmoid gate: the shared expert is the dense MLP too, its
gate is zero (σ(0) = ½), and s = ½, so the block is ½·MLP(x) + ½·MLP(x) = MLP(x).

The router gets no gradient from the LM loss while the experts are identical (Σ w_e = 1 makes the
output independent of w), only from the load-balancing loss (`output_router_logits: true` in the
target). A random router still sends different tokens to different experts, so the experts get
different gradients and drift apart; a zero router ties every expert, top-k picks the same k for
every token and the others get no tokens until the balancing loss has moved the router.

No noise on the expert copies can keep the function for every top-k subset: Σ_{e∈S} w_e N_e = 0 for
every subset S and every renormalised weight vector w forces every N_e = 0. `expert_noise_db` is
therefore a reported deviation, not an exact option (see docs/grow.md, "Dense → mixture of experts").

Every step is linear in the dense weights (copies, the factor s, zero gates); the router init and
the expert noise are separate additive terms, so `grow_map` stays the linear part.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from transformers import PretrainedConfig
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

from kinherit.arch import FAMILIES, FamilySpec
from kinherit.arch.spec import MoeTarget
from kinherit.errors import KinheritError
from kinherit.grow.noise import seeded_generator
from kinherit.grow.options import GrowthOptions
from kinherit.registry import Registry

REFERENCE = (
    "Komatsuzaki et al. 2022, Sparse Upcycling: Training Mixture-of-Experts from Dense Checkpoints, "
    "https://arxiv.org/abs/2212.05055"
)
MLP_PARTS = ("gate_proj", "up_proj", "down_proj")


MOE_TARGETS: Registry[MoeTarget] = Registry("upcycling source family")
"""Dense family name → the mixture of experts it upcycles into (`FamilySpec.upcycle`, declared by the family)."""
for _name, _family in FAMILIES.items():
    if _family.upcycle is not None:
        MOE_TARGETS.add(_name, _family.upcycle, REFERENCE)


def _target_family(target: MoeTarget) -> FamilySpec:
    return next(f for f in FAMILIES.values() if target.model_type in f.model_types)


@dataclass(frozen=True)
class UpcyclePlan:
    """The upcycling part of a growth plan (`GrowthPlan.upcycle`)."""

    num_experts: int
    experts_per_token: int
    router: str
    router_std: float  # std of a random router's entries (orthogonal: the same row norm)
    seed: int
    architecture: str  # the target class, e.g. MixtralForCausalLM
    config: dict[str, Any]  # the target's config.json
    down_scale: float
    shared_expert: bool
    expert_noise_db: float | None = None
    expert_noise_std: dict[str, float] | None = None  # per dense MLP tensor; None until resolved
    drop_ratio: float = 0.0  # Drop-Upcycling: share of each expert's FFN units re-initialised
    drop_stats: dict[str, tuple[float, float]] | None = None  # (mean, std) per dense MLP tensor; None until resolved

    @property
    def exact(self) -> bool:
        return self.expert_noise_db is None and self.drop_ratio == 0.0

    def describe(self) -> str:
        noise = "off" if self.expert_noise_db is None else f"{self.expert_noise_db:g} dB"
        return (
            f"{self.architecture}: {self.num_experts} experts, top-{self.experts_per_token}, router={self.router}, "
            f"expert noise={noise}"
            + (f", drop-upcycling {self.drop_ratio:g}" if self.drop_ratio else "")
            + (", shared expert" if self.shared_expert else "")
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UpcyclePlan:
        stats = data.get("drop_stats")
        return cls(**{**data, "drop_stats": {k: tuple(v) for k, v in stats.items()} if stats else None})


def plan_upcycle(family: str, architecture: str, dense: PretrainedConfig, options: GrowthOptions) -> UpcyclePlan:
    """Build the target config from the (grown) dense config `dense` and the validated upcycling `options`."""
    target = MOE_TARGETS.lookup(family)
    std = float(options.router_std if options.router_std is not None else getattr(dense, "initializer_range", 0.02))
    if options.router != "zero" and not std > 0:
        raise KinheritError(f"the router std must be positive, got {std}")
    arch = target.architecture(architecture)
    if arch is None:
        raise KinheritError(f"cannot upcycle {architecture}: expected a {target.source_prefix}* architecture")
    return UpcyclePlan(
        num_experts=options.num_experts,
        experts_per_token=options.top_k,
        router=options.router,
        router_std=std,
        seed=options.seed,
        architecture=arch,
        config=moe_config(target, dense, arch, options.num_experts, options.top_k).to_dict(),
        down_scale=target.down_scale,
        shared_expert=target.shared_expert,
        expert_noise_db=options.expert_noise_db,
        drop_ratio=float(options.drop_upcycling),
    )


def moe_config(
    target: MoeTarget, dense: PretrainedConfig, architecture: str, experts: int, top_k: int
) -> PretrainedConfig:
    """The target's config: every entry the target's config class knows is taken from the dense config
    (sizes, RoPE, norms, vocabulary, tying, biases), each expert has the dense FFN size."""
    cls = CONFIG_MAPPING[target.model_type]
    known = cls().to_dict()
    if getattr(dense, "attention_bias", False) and not {"attention_bias", "qkv_bias"} & set(known):
        raise KinheritError(f"cannot upcycle a model with attention biases into {target.model_type}, which has none")
    skip = {"model_type", "architectures", "transformers_version"}
    data = {k: v for k, v in dense.to_dict().items() if k in known and k not in skip}
    ffn = int(dense.intermediate_size)
    data.update(
        {
            target.experts_key: experts,
            "num_experts_per_tok": top_k,
            target.expert_ffn_key: ffn,
            "intermediate_size": ffn,
            "output_router_logits": True,
            "architectures": [architecture],
            **dict(_target_family(target).required_config),
            **dict(target.fixed),
        }
    )
    if target.shared_expert:
        data["shared_expert_intermediate_size"] = ffn
    if "qkv_bias" in known:  # qwen2_moe: q/k/v biases are a config switch (Qwen2 always has them)
        data["qkv_bias"] = True
    return cls.from_dict(data)


def _mlp_key(key: str) -> tuple[str, str] | None:
    """(prefix up to `mlp.`, part) of a dense MLP weight key, e.g. (`model.layers.3.mlp.`, `gate_proj`)."""
    head, sep, tail = key.rpartition(".mlp.")
    if not sep:
        return None
    part, _, what = tail.partition(".")
    if part not in MLP_PARTS:
        return None
    if what != "weight":
        raise KinheritError(f"cannot upcycle {key}: the experts of the target have no MLP biases")
    return head + sep, part


def router_init(plan: UpcyclePlan, key: str, hidden: int) -> torch.Tensor:
    """The router's (E, H) weight: zeros; N(0, std²) entries; or orthonormal rows (E ≤ H; else
    orthonormal columns) scaled to the random router's expected row norm std·√H. Seeded by key."""
    shape = (plan.num_experts, hidden)
    if plan.router == "zero":
        return torch.zeros(shape)
    gen = seeded_generator(plan.seed, key)
    weight = torch.randn(shape, generator=gen)  # (E, H)
    if plan.router == "random":
        return weight * plan.router_std
    q, r = torch.linalg.qr(weight.T if plan.num_experts <= hidden else weight)
    q = q * torch.sign(torch.diagonal(r))  # a uniformly distributed orthogonal frame
    rows = q.T if plan.num_experts <= hidden else q  # (E, H)
    return rows.contiguous() * plan.router_std * math.sqrt(hidden)


def expert_noise(plan: UpcyclePlan, key: str, dense_key: str, shape: tuple[int, ...]) -> torch.Tensor:
    """Independent N(0, σ²) noise on every expert copy, σ = std(dense tensor)·10^(−SNR/20)."""
    assert plan.expert_noise_std is not None, "expert noise scales are not resolved"
    return torch.randn(shape, generator=seeded_generator(plan.seed, key)) * plan.expert_noise_std[dense_key]


def needs_resolving(plan: UpcyclePlan) -> bool:
    return (plan.expert_noise_db is not None and plan.expert_noise_std is None) or (
        plan.drop_ratio > 0 and plan.drop_stats is None
    )


def resolve_expert_noise(plan: UpcyclePlan, dense: Iterable[tuple[str, torch.Tensor]]) -> UpcyclePlan:
    """A copy of `plan` with the weight-dependent scales of its additive terms, measured once on the grown dense
    MLP tensors: the expert noise std, and the (mean, std) that drop-upcycling re-initialises with."""
    if not needs_resolving(plan):
        return plan
    mlp = {key: x.float() for key, x in dense if _mlp_key(key) is not None}
    if plan.expert_noise_db is not None and plan.expert_noise_std is None:
        factor = 10.0 ** (-plan.expert_noise_db / 20.0)
        plan = replace(plan, expert_noise_std={key: float(x.std()) * factor for key, x in mlp.items()})
    if plan.drop_ratio > 0 and plan.drop_stats is None:
        plan = replace(plan, drop_stats={key: (float(x.mean()), float(x.std())) for key, x in mlp.items()})
    return plan


def dropped_units(plan: UpcyclePlan, prefix: str, ffn: int) -> list[torch.Tensor]:
    """Drop-Upcycling (Nakamura et al. 2025): per expert, the round(r·F) FFN units it re-initialises (seeded)."""
    count = round(plan.drop_ratio * ffn)
    return [
        torch.randperm(ffn, generator=seeded_generator(plan.seed, f"{prefix}drop.{e}"))[:count]
        for e in range(plan.num_experts)
    ]


def _drop(
    plan: UpcyclePlan, prefix: str, gate_up: torch.Tensor, down: torch.Tensor, keys: tuple[str, str, str] | None
) -> None:
    """In place: every expert's dropped units, rows of gate/up and columns of down, become zero (`keys` None: the
    linear part M⊙W) or new N(mean, std²) draws with the dense tensor's statistics (the additive part)."""
    ffn = gate_up.shape[1] // 2
    for e, idx in enumerate(dropped_units(plan, prefix, ffn)):
        for rows, sl, key in ((idx, gate_up[e], keys and keys[0]), (idx + ffn, gate_up[e], keys and keys[1])):
            sl[rows] = 0.0 if key is None else _redrawn(plan, key, prefix, e, (len(rows), sl.shape[1]))
        down[e][:, idx] = (
            0.0 if keys is None else _redrawn(plan, keys[2], prefix, e, (down.shape[1], len(idx))) * plan.down_scale
        )


def _redrawn(plan: UpcyclePlan, key: str, prefix: str, expert: int, shape: tuple[int, ...]) -> torch.Tensor:
    """N(mean, std²) entries with the dense tensor's statistics (the stream's key keeps its first name, `fresh`, so
    recorded growths replay the same draws)."""
    mean, std = plan.drop_stats[key]
    return mean + std * torch.randn(shape, generator=seeded_generator(plan.seed, f"{prefix}fresh.{expert}.{key}"))


def upcycle_tensors(
    plan: UpcyclePlan, dense: Iterable[tuple[str, torch.Tensor]], *, noise: bool = True, strict: bool = True
) -> Iterator[tuple[str, torch.Tensor]]:
    """Turn the grown dense tensors into the target's: non-MLP tensors pass through; each layer's
    gate/up/down become the fused expert tensors (plus the shared expert), and with `noise` the
    router init and the expert noise are added. `strict=False` (a partial delta) maps the MLP parts
    present and leaves the router out."""
    pending: dict[str, dict[str, tuple[str, torch.Tensor]]] = {}
    for key, x in dense:
        found = _mlp_key(key)
        if found is None:
            yield key, x
            continue
        prefix, part = found
        pending.setdefault(prefix, {})[part] = (key, x)
        if len(pending[prefix]) == len(MLP_PARTS):
            yield from _layer(plan, prefix, pending.pop(prefix), noise)
    if strict and pending:
        raise KinheritError(
            f"the dense MLP of {sorted(pending)[0]} is incomplete: {sorted(pending[sorted(pending)[0]])}"
        )
    for prefix, parts in pending.items():  # a partial delta: the linear map of what is there
        yield from _partial(plan, prefix, parts)


def _layer(
    plan: UpcyclePlan, prefix: str, parts: dict[str, tuple[str, torch.Tensor]], noise: bool
) -> Iterator[tuple[str, torch.Tensor]]:
    (gate_key, gate), (up_key, up), (down_key, down) = (parts[p] for p in MLP_PARTS)
    E = plan.num_experts
    gate_up = torch.cat([gate, up], 0).unsqueeze(0).repeat(E, 1, 1)  # (E, 2F, H)
    experts_down = (down * plan.down_scale).unsqueeze(0).repeat(E, 1, 1)  # (E, H, F)
    if plan.drop_ratio > 0:
        _drop(plan, prefix, gate_up, experts_down, (gate_key, up_key, down_key) if noise else None)
    if noise and plan.expert_noise_db is not None:
        F = gate.shape[0]
        gate_up[:, :F] += expert_noise(plan, prefix + "experts.gate", gate_key, (E, *gate.shape))
        gate_up[:, F:] += expert_noise(plan, prefix + "experts.up", up_key, (E, *up.shape))
        experts_down += expert_noise(plan, prefix + "experts.down_proj", down_key, (E, *down.shape)) * plan.down_scale
    yield prefix + "experts.gate_up_proj", gate_up
    yield prefix + "experts.down_proj", experts_down
    hidden = gate.shape[1]
    yield prefix + "gate.weight", router_init(plan, prefix + "gate.weight", hidden) if noise else torch.zeros(E, hidden)
    if plan.shared_expert:
        yield prefix + "shared_expert.gate_proj.weight", gate.clone()
        yield prefix + "shared_expert.up_proj.weight", up.clone()
        yield prefix + "shared_expert.down_proj.weight", down.clone()
        yield prefix + "shared_expert_gate.weight", torch.zeros(1, hidden)  # σ(0) = ½


def _partial(
    plan: UpcyclePlan, prefix: str, parts: dict[str, tuple[str, torch.Tensor]]
) -> Iterator[tuple[str, torch.Tensor]]:
    """The linear map of an incomplete MLP (a delta touching some of gate/up/down): the fused gate/up
    tensor needs both halves, so a missing half is a zero delta; drop-upcycled units get none."""
    E = plan.num_experts
    gate, up = (parts[p][1] if p in parts else None for p in ("gate_proj", "up_proj"))
    gate_up = down = None
    if gate is not None or up is not None:
        half = gate if gate is not None else up
        gate_up = (
            torch.cat(
                [
                    gate if gate is not None else torch.zeros_like(half),
                    up if up is not None else torch.zeros_like(half),
                ],
                0,
            )
            .unsqueeze(0)
            .repeat(E, 1, 1)
        )
    if "down_proj" in parts:
        down = (parts["down_proj"][1] * plan.down_scale).unsqueeze(0).repeat(E, 1, 1)
    if plan.drop_ratio > 0:
        _drop(
            plan,
            prefix,
            gate_up if gate_up is not None else torch.zeros(E, 2 * down.shape[2], 0),
            down if down is not None else torch.zeros(E, 0, gate_up.shape[1] // 2),
            None,
        )
    if gate_up is not None:
        yield prefix + "experts.gate_up_proj", gate_up
    if down is not None:
        yield prefix + "experts.down_proj", down
    if plan.shared_expert:
        for part, (_, x) in parts.items():
            yield prefix + f"shared_expert.{part}.weight", x.clone()
