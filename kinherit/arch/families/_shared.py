"""Pieces several family records share: FFN sizing, the Llama tensor table and its heads."""

from __future__ import annotations

from transformers import PretrainedConfig

from kinherit.arch.spec import ConfigBuilder, ConfigKeys, HeadSpec, ModelSizes, TensorSpec, t


def ffn_size(cfg: ModelSizes, gated: bool) -> int:
    """`model.intermediate_size`, else 4·d, or for a gated (SwiGLU) MLP 8/3·d rounded up to 8, which keeps the
    parameter count of a 4·d MLP."""
    if cfg.intermediate_size is not None:
        return cfg.intermediate_size
    if gated:
        return -(-int(8 * cfg.hidden_size / 3) // 8) * 8
    return 4 * cfg.hidden_size


SCORE = (t("score.weight", "fixed:labels", "in:hidden"),)
"""The decoder families' sequence-classification head: one bias-free linear layer on the last token."""

QKV_PROJECTIONS = (
    t("layers.{layer}.self_attn.q_proj.weight", "out:q", "in:hidden"),
    t("layers.{layer}.self_attn.q_proj.bias", "out:q", optional=True),
    t("layers.{layer}.self_attn.k_proj.weight", "out:kv", "in:hidden"),
    t("layers.{layer}.self_attn.k_proj.bias", "out:kv", optional=True),
    t("layers.{layer}.self_attn.v_proj.weight", "out:kv", "in:hidden"),
    t("layers.{layer}.self_attn.v_proj.bias", "out:kv", optional=True),
)
"""Separate q/k/v projections with optional biases, as every Llama-style decoder has them."""


def out_projection(residual_out: bool) -> tuple[TensorSpec, ...]:
    """`o_proj` and its optional bias; `residual_out` where zeroing it makes a new layer the identity (pre-norm
    families; families with a norm on the branch output zero that norm's gain instead)."""
    return (
        t("layers.{layer}.self_attn.o_proj.weight", "out:hidden", "in:q", residual_out=residual_out),
        t("layers.{layer}.self_attn.o_proj.bias", "out:hidden", optional=True, residual_out=residual_out),
    )


LLAMA_ATTENTION = (t("layers.{layer}.input_layernorm.weight", "norm:hidden"),) + QKV_PROJECTIONS + out_projection(True)
LLAMA_MLP = (
    t("layers.{layer}.post_attention_layernorm.weight", "norm:hidden"),
    t("layers.{layer}.mlp.gate_proj.weight", "out:ffn", "in:hidden"),
    t("layers.{layer}.mlp.gate_proj.bias", "out:ffn", optional=True),
    t("layers.{layer}.mlp.up_proj.weight", "out:ffn", "in:hidden"),
    t("layers.{layer}.mlp.up_proj.bias", "out:ffn", optional=True),
    t("layers.{layer}.mlp.down_proj.weight", "out:hidden", "in:ffn", residual_out=True),
    t("layers.{layer}.mlp.down_proj.bias", "out:hidden", optional=True, residual_out=True),
)
LLAMA_EMBEDDING = (t("embed_tokens.weight", "fixed:vocab", "out:hidden"),)
LLAMA_FINAL_NORM = (t("norm.weight", "norm:hidden"),)
LLAMA_BASE: tuple[TensorSpec, ...] = LLAMA_EMBEDDING + LLAMA_ATTENTION + LLAMA_MLP + LLAMA_FINAL_NORM
"""Llama's decoder: pre-RMSNorm, RoPE, grouped-query attention, gated MLP, optional biases."""

LLAMA_KEYS = ConfigKeys(
    hidden="hidden_size",
    ffn="intermediate_size",
    heads="num_attention_heads",
    layers="num_hidden_layers",
    kv_heads="num_key_value_heads",
    head_dim="head_dim",
)


def causal_lm_heads(prefix: str, final_norms: tuple[str, ...] = ("model.norm.weight",)) -> tuple[HeadSpec, ...]:
    """`{prefix}Model` and `{prefix}ForCausalLM` with an `lm_head` that may be tied to `embed_tokens`."""
    return (
        HeadSpec(f"{prefix}Model", "", "hidden"),
        HeadSpec(
            f"{prefix}ForCausalLM",
            "model.",
            "causal_lm",
            tensors=(t("lm_head.weight", "fixed:vocab", "in:hidden"),),
            tied=("lm_head.weight", "model.embed_tokens.weight"),
            head_norms=final_norms,
        ),
    )


def decoder_config(config_cls: type[PretrainedConfig], **extra) -> ConfigBuilder:
    """A builder for Llama-style configs (`hidden_size`, `num_key_value_heads`, gated MLP); `extra` are
    fixed keyword arguments of the family's config class."""

    def build(cfg: ModelSizes, vocab: int, positions: int) -> PretrainedConfig:
        return config_cls(
            vocab_size=vocab,
            max_position_embeddings=positions,
            hidden_size=cfg.hidden_size,
            num_hidden_layers=cfg.num_layers,
            num_attention_heads=cfg.num_heads,
            num_key_value_heads=cfg.num_kv_heads or cfg.num_heads,
            intermediate_size=ffn_size(cfg, gated=True),
            attention_dropout=cfg.dropout,
            tie_word_embeddings=cfg.tie_word_embeddings,
            **extra,
        )

    return build
