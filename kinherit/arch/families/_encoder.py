"""The BERT encoder shared by bert and roberta: post-LayerNorm, learned positions, an MLM head tied to the
word embeddings."""

from __future__ import annotations

from transformers import PretrainedConfig

from kinherit.arch.families._shared import ffn_size
from kinherit.arch.spec import ConfigBuilder, ConfigKeys, HeadSpec, ModelSizes, t

ENCODER_BASE = (
    t("embeddings.word_embeddings.weight", "fixed:vocab", "out:hidden"),
    t("embeddings.position_embeddings.weight", "fixed:positions", "out:hidden"),
    t("embeddings.token_type_embeddings.weight", "fixed:token_types", "out:hidden"),
    t("embeddings.LayerNorm.weight", "norm:hidden"),
    t("embeddings.LayerNorm.bias", "norm:hidden"),
    t("encoder.layer.{layer}.attention.self.query.weight", "out:q", "in:hidden"),
    t("encoder.layer.{layer}.attention.self.query.bias", "out:q"),
    t("encoder.layer.{layer}.attention.self.key.weight", "out:kv", "in:hidden"),
    t("encoder.layer.{layer}.attention.self.key.bias", "out:kv"),
    t("encoder.layer.{layer}.attention.self.value.weight", "out:kv", "in:hidden"),
    t("encoder.layer.{layer}.attention.self.value.bias", "out:kv"),
    t("encoder.layer.{layer}.attention.output.dense.weight", "out:hidden", "in:q", residual_out=True),
    t("encoder.layer.{layer}.attention.output.dense.bias", "out:hidden", residual_out=True),
    t("encoder.layer.{layer}.attention.output.LayerNorm.weight", "norm:hidden"),
    t("encoder.layer.{layer}.attention.output.LayerNorm.bias", "norm:hidden"),
    t("encoder.layer.{layer}.intermediate.dense.weight", "out:ffn", "in:hidden"),
    t("encoder.layer.{layer}.intermediate.dense.bias", "out:ffn"),
    t("encoder.layer.{layer}.output.dense.weight", "out:hidden", "in:ffn", residual_out=True),
    t("encoder.layer.{layer}.output.dense.bias", "out:hidden", residual_out=True),
    t("encoder.layer.{layer}.output.LayerNorm.weight", "norm:hidden"),
    t("encoder.layer.{layer}.output.LayerNorm.bias", "norm:hidden"),
    t("pooler.dense.weight", "out:hidden", "in:hidden", optional=True),
    t("pooler.dense.bias", "out:hidden", optional=True),
)
ENCODER_KEYS = ConfigKeys(
    hidden="hidden_size", ffn="intermediate_size", heads="num_attention_heads", layers="num_hidden_layers"
)


def mlm_head(architecture: str, prefix: str, root: str, transform: str, norm: str) -> HeadSpec:
    """MLM head: transform dense + LayerNorm, then a decoder tied to the word embeddings."""
    return HeadSpec(
        architecture,
        prefix,
        "masked_lm",
        tensors=(
            t(f"{transform}.dense.weight", "out:hidden", "in:hidden"),
            t(f"{transform}.dense.bias", "out:hidden"),
            t(f"{transform}.{norm}.weight", "norm:hidden"),
            t(f"{transform}.{norm}.bias", "norm:hidden"),
            t(f"{root}.decoder.weight", "fixed:vocab", "in:hidden"),
            t(f"{root}.decoder.bias", "fixed:vocab"),
            t(f"{root}.bias", "fixed:vocab"),
        ),
        tied=(f"{root}.decoder.weight", f"{prefix}embeddings.word_embeddings.weight"),
        head_norms=(f"{transform}.{norm}.weight", f"{transform}.{norm}.bias"),
    )


def encoder_config(config_cls: type[PretrainedConfig], position_offset: int) -> ConfigBuilder:
    """Positions `positions + position_offset` (RoBERTa reserves the first two); one token type for RoBERTa."""

    def build(cfg: ModelSizes, vocab: int, positions: int) -> PretrainedConfig:
        return config_cls(
            vocab_size=vocab,
            max_position_embeddings=positions + position_offset,
            hidden_size=cfg.hidden_size,
            num_hidden_layers=cfg.num_layers,
            num_attention_heads=cfg.num_heads,
            intermediate_size=ffn_size(cfg, gated=False),
            hidden_dropout_prob=cfg.dropout,
            attention_probs_dropout_prob=cfg.dropout,
            tie_word_embeddings=cfg.tie_word_embeddings,
            type_vocab_size=1 if position_offset else 2,
        )

    return build
