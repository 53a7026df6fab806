"""Qwen2-MoE: Qwen2's attention (q/k/v biases) with routed gated-MLP experts plus one always-on shared expert
whose output is scaled by sigmoid(shared_expert_gate · x).

The shared expert keeps its width (`shared_expert_intermediate_size`, the space `shared_ffn` is fixed): it reads
and writes the grown hidden space like any consumer/producer, so growth stays exact, but it does not widen with
the routed experts. Its 1-unit gate reads hidden (copy-and-divide keeps the sigmoid's input)."""

from __future__ import annotations

from transformers import PretrainedConfig, Qwen2MoeConfig

from kinherit.arch.catalog import register_family
from kinherit.arch.families._moe import POST_ATTENTION_NORM, SPARSE_BLOCK, moe_config, moe_keys
from kinherit.arch.families._shared import LLAMA_ATTENTION, LLAMA_EMBEDDING, LLAMA_FINAL_NORM, SCORE, causal_lm_heads
from kinherit.arch.spec import FamilySpec, ModelSizes, t

KEYS = moe_keys(ffn="moe_intermediate_size", experts="num_experts")
SHARED_EXPERT = (
    t("layers.{layer}.mlp.shared_expert.gate_proj.weight", "fixed:shared_ffn", "in:hidden"),
    t("layers.{layer}.mlp.shared_expert.up_proj.weight", "fixed:shared_ffn", "in:hidden"),
    t("layers.{layer}.mlp.shared_expert.down_proj.weight", "out:hidden", "fixed:shared_ffn", residual_out=True),
    t("layers.{layer}.mlp.shared_expert_gate.weight", "fixed:gate", "in:hidden"),
)


def _build(cfg: ModelSizes, vocab: int, positions: int) -> PretrainedConfig:
    """Mixtral-style sizes; the shared expert (and the unused dense-MLP width) as wide as one routed expert."""
    config = moe_config(Qwen2MoeConfig, KEYS)(cfg, vocab, positions)
    config.shared_expert_intermediate_size = config.intermediate_size = config.moe_intermediate_size
    return config


register_family(
    FamilySpec(
        name="qwen2_moe",
        model_types=("qwen2_moe",),
        config=KEYS,
        residual="pre_norm",
        base_tensors=LLAMA_EMBEDDING
        + LLAMA_ATTENTION
        + POST_ATTENTION_NORM
        + SPARSE_BLOCK
        + SHARED_EXPERT
        + LLAMA_FINAL_NORM,
        build_config=_build,
        classifier=SCORE,
        reference="Yang et al. 2024, Qwen2 Technical Report (Qwen2-57B-A14B, shared + routed experts), https://arxiv.org/abs/2407.10671",
        heads=causal_lm_heads("Qwen2Moe"),
        required_config=(("decoder_sparse_step", 1), ("mlp_only_layers", [])),
    )
)
