"""Pieces the mixture-of-experts families share: the sparse block (router + fused experts) and the config builder.

transformers stores a layer's E experts as two 3-D parameters, `experts.gate_up_proj` (E, 2·ffn, d) (gate rows,
then up rows) and `experts.down_proj` (E, d, ffn), and the router as `gate.weight` (E, d). The router reads the
hidden space: copy-and-divide keeps its logits, hence the softmax, the top-k choice and the routing weights (with
or without `norm_topk_prob`), so growth is exact expert by expert. Zeroing every expert's `down_proj` zeroes the
block (the routing weights multiply zero), which makes a new layer the identity.
"""

from __future__ import annotations

from transformers import PretrainedConfig

from kinherit.arch.families._shared import ffn_size
from kinherit.arch.spec import (
    DEFAULT_EXPERTS_PER_TOKEN,
    DEFAULT_NUM_EXPERTS,
    ConfigBuilder,
    ConfigKeys,
    ModelSizes,
    TensorSpec,
    t,
)

POST_ATTENTION_NORM = (t("layers.{layer}.post_attention_layernorm.weight", "norm:hidden"),)
SPARSE_BLOCK: tuple[TensorSpec, ...] = (
    t("layers.{layer}.mlp.gate.weight", "fixed:experts", "in:hidden"),
    t("layers.{layer}.mlp.experts.gate_up_proj", "fixed:experts", "out:ffn+ffn", "in:hidden"),
    t("layers.{layer}.mlp.experts.down_proj", "fixed:experts", "out:hidden", "in:ffn", residual_out=True),
)
"""Router (E, d) and the fused experts: gate_up (E, 2·ffn, d), down (E, d, ffn)."""


def moe_keys(ffn: str, experts: str) -> ConfigKeys:
    """Llama's shape keys with the expert width `ffn` and the expert count `experts`."""
    return ConfigKeys(
        hidden="hidden_size",
        ffn=ffn,
        heads="num_attention_heads",
        layers="num_hidden_layers",
        kv_heads="num_key_value_heads",
        head_dim="head_dim",
        experts=experts,
        experts_per_token="num_experts_per_tok",
    )


def moe_config(config_cls: type[PretrainedConfig], keys: ConfigKeys, **extra) -> ConfigBuilder:
    """A builder for a Mixtral-style config: each expert a gated MLP of `model.intermediate_size`
    (default ≈8/3·d), `model.num_experts` experts (default 4), top-`model.num_experts_per_tok` (default 2)
    routing, and `output_router_logits` on, so training adds `router_aux_loss_coef`·(load-balancing loss) to
    the LM loss (logged as `aux_loss`). `extra` are fixed keyword arguments of the family's config class."""

    def build(cfg: ModelSizes, vocab: int, positions: int) -> PretrainedConfig:
        sizes = {
            keys.ffn: ffn_size(cfg, gated=True),
            keys.experts: cfg.num_experts or DEFAULT_NUM_EXPERTS,
            keys.experts_per_token: cfg.num_experts_per_tok or DEFAULT_EXPERTS_PER_TOKEN,
        }
        return config_cls(
            vocab_size=vocab,
            max_position_embeddings=positions,
            hidden_size=cfg.hidden_size,
            num_hidden_layers=cfg.num_layers,
            num_attention_heads=cfg.num_heads,
            num_key_value_heads=cfg.num_kv_heads or cfg.num_heads,
            attention_dropout=cfg.dropout,
            tie_word_embeddings=cfg.tie_word_embeddings,
            output_router_logits=True,
            **sizes,
            **extra,
        )

    return build
