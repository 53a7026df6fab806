"""Qwen3-MoE: Qwen3's attention (per-head q/k RMSNorm over head_dim) with a sparse mixture of gated-MLP experts."""

from transformers import Qwen3MoeConfig

from kinherit.arch.catalog import register_family
from kinherit.arch.families._moe import POST_ATTENTION_NORM, SPARSE_BLOCK, moe_config, moe_keys
from kinherit.arch.families._shared import LLAMA_ATTENTION, LLAMA_EMBEDDING, LLAMA_FINAL_NORM, SCORE, causal_lm_heads
from kinherit.arch.spec import FamilySpec, t

KEYS = moe_keys(ffn="moe_intermediate_size", experts="num_experts")
PER_HEAD_QK_NORMS = (
    t("layers.{layer}.self_attn.q_norm.weight", "fixed:head_dim"),  # one RMSNorm over each head's head_dim:
    t("layers.{layer}.self_attn.k_norm.weight", "fixed:head_dim"),  # heads grow whole, so it never changes
)

register_family(
    FamilySpec(
        name="qwen3_moe",
        model_types=("qwen3_moe",),
        config=KEYS,
        residual="pre_norm",
        base_tensors=LLAMA_EMBEDDING
        + LLAMA_ATTENTION
        + PER_HEAD_QK_NORMS
        + POST_ATTENTION_NORM
        + SPARSE_BLOCK
        + LLAMA_FINAL_NORM,
        build_config=moe_config(Qwen3MoeConfig, KEYS),
        classifier=SCORE,
        reference="Yang et al. 2025, Qwen3 Technical Report, https://arxiv.org/abs/2505.09388",
        heads=causal_lm_heads("Qwen3Moe"),
        required_config=(("decoder_sparse_step", 1), ("mlp_only_layers", [])),
    )
)
