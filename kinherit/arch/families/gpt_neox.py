"""GPT-NeoX (Pythia): pre-LayerNorm with biases, q/k/v fused into `query_key_value` and interleaved per
head (output axis (heads, 3, head_dim): `out:q+kv+kv/head`), a parallel residual
x + Attn(LN1(x)) + MLP(LN2(x)) (`use_parallel_residual`; sequential when off), partial rotary
(`partial_rotary_factor`, 0.25 by default) and an untied LM head (Pythia's `embed_out`, `lm_head` in
transformers 5). No grouped-query attention. Zeroing a new layer's attention `dense` and `dense_4h_to_h`
makes it the identity in both residual layouts.
"""

from __future__ import annotations

from transformers import GPTNeoXConfig, PretrainedConfig

from kinherit.arch.catalog import register_family
from kinherit.arch.families._shared import SCORE, ffn_size
from kinherit.arch.spec import ConfigKeys, FamilySpec, HeadSpec, ModelSizes, t


def build_config(cfg: ModelSizes, vocab: int, positions: int) -> PretrainedConfig:
    """Pythia's layout (parallel residual, rotary on a quarter of head_dim, untied head unless asked)."""
    if cfg.num_kv_heads not in (None, cfg.num_heads):
        raise ValueError("gpt_neox has no grouped-query attention: leave model.num_kv_heads unset")
    return GPTNeoXConfig(
        vocab_size=vocab,
        max_position_embeddings=positions,
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        intermediate_size=ffn_size(cfg, gated=False),
        attention_dropout=cfg.dropout,
        hidden_dropout=cfg.dropout,
        tie_word_embeddings=cfg.tie_word_embeddings,
    )


register_family(
    FamilySpec(
        name="gpt_neox",
        model_types=("gpt_neox",),
        config=ConfigKeys(
            hidden="hidden_size", ffn="intermediate_size", heads="num_attention_heads", layers="num_hidden_layers"
        ),
        residual="pre_norm",
        base_tensors=(
            t("embed_in.weight", "fixed:vocab", "out:hidden"),
            t("layers.{layer}.input_layernorm.weight", "norm:hidden"),
            t("layers.{layer}.input_layernorm.bias", "norm:hidden"),
            t("layers.{layer}.post_attention_layernorm.weight", "norm:hidden"),
            t("layers.{layer}.post_attention_layernorm.bias", "norm:hidden"),
            t("layers.{layer}.attention.query_key_value.weight", "out:q+kv+kv/head", "in:hidden"),
            t("layers.{layer}.attention.query_key_value.bias", "out:q+kv+kv/head", optional=True),
            t("layers.{layer}.attention.dense.weight", "out:hidden", "in:q", residual_out=True),
            t("layers.{layer}.attention.dense.bias", "out:hidden", optional=True, residual_out=True),
            t("layers.{layer}.mlp.dense_h_to_4h.weight", "out:ffn", "in:hidden"),
            t("layers.{layer}.mlp.dense_h_to_4h.bias", "out:ffn"),
            t("layers.{layer}.mlp.dense_4h_to_h.weight", "out:hidden", "in:ffn", residual_out=True),
            t("layers.{layer}.mlp.dense_4h_to_h.bias", "out:hidden", residual_out=True),
            t("final_layer_norm.weight", "norm:hidden"),
            t("final_layer_norm.bias", "norm:hidden"),
        ),
        build_config=build_config,
        classifier=SCORE,
        reference="Biderman et al. 2023, Pythia: A Suite for Analyzing Large Language Models, https://arxiv.org/abs/2304.01373",
        heads=(
            HeadSpec("GPTNeoXModel", "", "hidden"),
            HeadSpec(
                "GPTNeoXForCausalLM",
                "gpt_neox.",
                "causal_lm",
                # in memory `lm_head`; transformers writes it back to disk under Pythia's name `embed_out`,
                # which raw folder reads (`kinherit divergence`) see
                tensors=(
                    t("lm_head.weight", "fixed:vocab", "in:hidden", optional=True),
                    t("embed_out.weight", "fixed:vocab", "in:hidden", optional=True),
                ),
                tied=("lm_head.weight", "gpt_neox.embed_in.weight"),
                head_norms=("gpt_neox.final_layer_norm.weight", "gpt_neox.final_layer_norm.bias"),
            ),
        ),
    )
)
