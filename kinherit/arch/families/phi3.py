"""Phi-3: Llama's decoder with q/k/v fused into `qkv_proj` (out: q | k | v blocks) and gate/up fused into
`gate_up_proj` (out: gate | up blocks). Each packed segment grows with its own space's unit map."""

from __future__ import annotations

import dataclasses

from transformers import Phi3Config, PretrainedConfig

from kinherit.arch.catalog import register_family
from kinherit.arch.families._shared import (
    LLAMA_EMBEDDING,
    LLAMA_FINAL_NORM,
    LLAMA_KEYS,
    SCORE,
    causal_lm_heads,
    ffn_size,
)
from kinherit.arch.spec import FamilySpec, ModelSizes, t

PHI3_LAYER = (
    t("layers.{layer}.input_layernorm.weight", "norm:hidden"),
    t("layers.{layer}.self_attn.qkv_proj.weight", "out:q+kv+kv", "in:hidden"),
    t("layers.{layer}.self_attn.o_proj.weight", "out:hidden", "in:q", residual_out=True),
    t("layers.{layer}.post_attention_layernorm.weight", "norm:hidden"),
    t("layers.{layer}.mlp.gate_up_proj.weight", "out:ffn+ffn", "in:hidden"),
    t("layers.{layer}.mlp.down_proj.weight", "out:hidden", "in:ffn", residual_out=True),
)


def build_config(cfg: ModelSizes, vocab: int, positions: int) -> PretrainedConfig:
    """Phi3Config's default token ids (pad/eos 32000) lie outside a small vocabulary: use Llama's (bos 1,
    eos 2, no pad id; the tokenizer's pad id is set where it matters, e.g. for classification)."""
    return Phi3Config(
        vocab_size=vocab,
        max_position_embeddings=positions,
        original_max_position_embeddings=positions,
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_kv_heads or cfg.num_heads,
        intermediate_size=ffn_size(cfg, gated=True),
        attention_dropout=cfg.dropout,
        resid_pdrop=cfg.dropout,
        embd_pdrop=cfg.dropout,
        tie_word_embeddings=cfg.tie_word_embeddings,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=None,
    )


register_family(
    FamilySpec(
        name="phi3",
        model_types=("phi3",),
        config=dataclasses.replace(LLAMA_KEYS, head_dim=None),  # head_dim = hidden / heads
        residual="pre_norm",
        base_tensors=LLAMA_EMBEDDING + PHI3_LAYER + LLAMA_FINAL_NORM,
        build_config=build_config,
        classifier=SCORE,
        reference="Abdin et al. 2024, Phi-3 Technical Report, https://arxiv.org/abs/2404.14219",
        heads=causal_lm_heads("Phi3"),
    )
)
