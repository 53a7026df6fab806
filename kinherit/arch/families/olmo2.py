"""OLMo 2: RMSNorms on the sublayer *outputs* inside the residual branch, x + RMSNorm(f(x)) with no
pre-norm, and q/k RMSNorms over the whole projected q and kv widths (not per head).

A new identity layer zeroes the branch-output norm gains (`residual_out`), not the out projections:
RMSNorm(0) would be 0 too, but the cancelling symmetry-breaking noise on a zeroed projection leaves
round-off that the norm rescales to full size. The q/k norms make q and kv normalised spaces: growing
them is exact only when every head is copied equally often.
"""

from __future__ import annotations

import dataclasses

from transformers import Olmo2Config, PretrainedConfig

from kinherit.arch.catalog import register_family
from kinherit.arch.families._shared import (
    LLAMA_EMBEDDING,
    LLAMA_FINAL_NORM,
    LLAMA_KEYS,
    QKV_PROJECTIONS,
    SCORE,
    causal_lm_heads,
    ffn_size,
    out_projection,
)
from kinherit.arch.spec import FamilySpec, ModelSizes, t

OLMO2_LAYER = (
    QKV_PROJECTIONS
    + (
        t("layers.{layer}.self_attn.q_norm.weight", "norm:q"),
        t("layers.{layer}.self_attn.k_norm.weight", "norm:kv"),
    )
    + out_projection(False)
    + (
        t("layers.{layer}.post_attention_layernorm.weight", "norm:hidden", residual_out=True),
        t("layers.{layer}.mlp.gate_proj.weight", "out:ffn", "in:hidden"),
        t("layers.{layer}.mlp.up_proj.weight", "out:ffn", "in:hidden"),
        t("layers.{layer}.mlp.down_proj.weight", "out:hidden", "in:ffn"),
        t("layers.{layer}.post_feedforward_layernorm.weight", "norm:hidden", residual_out=True),
    )
)


def build_config(cfg: ModelSizes, vocab: int, positions: int) -> PretrainedConfig:
    """Olmo2Config's default eos id (50279) lies outside a small vocabulary: bos 1, eos 2, no pad id."""
    return Olmo2Config(
        vocab_size=vocab,
        max_position_embeddings=positions,
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_kv_heads or cfg.num_heads,
        intermediate_size=ffn_size(cfg, gated=True),
        attention_dropout=cfg.dropout,
        tie_word_embeddings=cfg.tie_word_embeddings,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=None,
    )


register_family(
    FamilySpec(
        name="olmo2",
        model_types=("olmo2",),
        config=dataclasses.replace(LLAMA_KEYS, head_dim=None),  # head_dim = hidden / heads
        residual="branch_norm",
        base_tensors=LLAMA_EMBEDDING + OLMO2_LAYER + LLAMA_FINAL_NORM,
        build_config=build_config,
        classifier=SCORE,
        reference="OLMo et al. 2024, 2 OLMo 2 Furious, https://arxiv.org/abs/2501.00656",
        heads=causal_lm_heads("Olmo2"),
        normalized_spaces=("hidden", "q", "kv"),
    )
)
