"""Pieces Gemma 2 and Gemma 3 share: the sandwich-norm decoder table and the config builder.

Gemma's quirks, and where growth handles them:
* the embedding is multiplied by √hidden_size inside the model: `scaled_by_sqrt="hidden"` multiplies
  the grown embedding by √(d/d'), and with tied embeddings the final norm's effective gain by
  1/(c·count) on top (see `HeadSpec`);
* RMSNorm scales by (1 + w): every norm has `offset=1.0`, so divisions and zeroing act on 1 + w;
* the sublayer outputs are normalised before the residual add (post-attention / post-feedforward
  norms): a new identity layer zeroes those norms' gains (w = −1, an exact 0 output) instead of
  o_proj/down_proj, whose cancelling noise would leave round-off that RMSNorm divides by √eps;
* attention / final-logit soft-capping, `query_pre_attn_scalar` and the sliding window are config
  fields: growth keeps head_dim and whole heads, so the capped scores and logits are unchanged, and
  per-layer `layer_types` follow the layer map (`write_shape`).
"""

from __future__ import annotations

from transformers import PretrainedConfig

from kinherit.arch.families._shared import QKV_PROJECTIONS, ffn_size, out_projection
from kinherit.arch.spec import ConfigBuilder, HeadSpec, ModelSizes, TensorSpec, t


def _norm(name: str, residual_out: bool = False) -> TensorSpec:
    return t(name, "norm:hidden", offset=1.0, residual_out=residual_out)


GEMMA_EMBEDDING = (t("embed_tokens.weight", "fixed:vocab", "out:hidden", scaled_by_sqrt="hidden"),)
GEMMA_ATTENTION = (
    (_norm("layers.{layer}.input_layernorm.weight"),)
    + QKV_PROJECTIONS
    + out_projection(False)
    + (_norm("layers.{layer}.post_attention_layernorm.weight", residual_out=True),)
)
GEMMA_QK_NORMS = (
    t("layers.{layer}.self_attn.q_norm.weight", "fixed:head_dim", offset=1.0),
    t("layers.{layer}.self_attn.k_norm.weight", "fixed:head_dim", offset=1.0),
)
"""Gemma 3's per-head q/k RMSNorms over head_dim, which growth never changes: copied as they are."""
GEMMA_MLP = (
    _norm("layers.{layer}.pre_feedforward_layernorm.weight"),
    t("layers.{layer}.mlp.gate_proj.weight", "out:ffn", "in:hidden"),
    t("layers.{layer}.mlp.up_proj.weight", "out:ffn", "in:hidden"),
    t("layers.{layer}.mlp.down_proj.weight", "out:hidden", "in:ffn"),
    _norm("layers.{layer}.post_feedforward_layernorm.weight", residual_out=True),
)
GEMMA_FINAL_NORM = (_norm("norm.weight"),)


def gemma_heads(base: str, causal_lm: str) -> tuple[HeadSpec, ...]:
    """The bare decoder and the causal LM, whose `lm_head` is tied to the embedding by default."""
    return (
        HeadSpec(base, "", "hidden"),
        HeadSpec(
            causal_lm,
            "model.",
            "causal_lm",
            tensors=(t("lm_head.weight", "fixed:vocab", "in:hidden"),),
            tied=("lm_head.weight", "model.embed_tokens.weight"),
            head_norms=("model.norm.weight",),
        ),
    )


def sliding_window(positions: int) -> int:
    """Half the positions, Gemma 2's ratio (4096 of 8192): short training sequences still cross it."""
    return max(positions // 2, 1)


def gemma_config(config_cls: type[PretrainedConfig], layer_types: bool) -> ConfigBuilder:
    """A builder for Gemma configs: head_dim = hidden/heads, `query_pre_attn_scalar` = head_dim (the
    1/√head_dim softmax scale), tied embeddings unless `model.tie_word_embeddings` is false, a
    sliding window of half the positions, and no pad id (Gemma's default 0 is the embedding's
    `padding_idx`, whose row never trains, and kinherit's tokenizers put the document separator there). `layer_types`:
    write Gemma 3's local:global pattern (5:1, or sliding then full when there are fewer than 6 layers) instead of its
    all-sliding default."""

    def build(cfg: ModelSizes, vocab: int, positions: int) -> PretrainedConfig:
        head_dim = cfg.hidden_size // cfg.num_heads
        extra = {}
        if layer_types:
            period = min(6, cfg.num_layers)
            extra["layer_types"] = [
                "full_attention" if (i + 1) % period == 0 else "sliding_attention" for i in range(cfg.num_layers)
            ]
        return config_cls(
            vocab_size=vocab,
            max_position_embeddings=positions,
            hidden_size=cfg.hidden_size,
            num_hidden_layers=cfg.num_layers,
            num_attention_heads=cfg.num_heads,
            num_key_value_heads=cfg.num_kv_heads or cfg.num_heads,
            intermediate_size=ffn_size(cfg, gated=True),
            head_dim=head_dim,
            query_pre_attn_scalar=head_dim,
            sliding_window=sliding_window(positions),
            attention_dropout=cfg.dropout,
            tie_word_embeddings=cfg.tie_word_embeddings,
            pad_token_id=None,
            **extra,
        )

    return build
