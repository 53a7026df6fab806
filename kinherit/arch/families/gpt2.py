"""GPT-2: pre-LayerNorm, fused qkv `Conv1D` (weights stored (in, out)), learned positions, tied LM head."""

from __future__ import annotations

from transformers import GPT2Config, PretrainedConfig

from kinherit.arch.catalog import register_family
from kinherit.arch.families._shared import SCORE, ffn_size
from kinherit.arch.spec import ConfigKeys, FamilySpec, HeadSpec, ModelSizes, t


def build_config(cfg: ModelSizes, vocab: int, positions: int) -> PretrainedConfig:
    return GPT2Config(
        vocab_size=vocab,
        n_positions=positions,
        n_embd=cfg.hidden_size,
        n_layer=cfg.num_layers,
        n_head=cfg.num_heads,
        n_inner=ffn_size(cfg, gated=False),
        resid_pdrop=cfg.dropout,
        embd_pdrop=cfg.dropout,
        attn_pdrop=cfg.dropout,
        tie_word_embeddings=cfg.tie_word_embeddings,
    )


register_family(
    FamilySpec(
        name="gpt2",
        model_types=("gpt2",),
        config=ConfigKeys(hidden="n_embd", ffn="n_inner", heads="n_head", layers="n_layer", ffn_default_factor=4),
        residual="pre_norm",
        base_tensors=(
            t("wte.weight", "fixed:vocab", "out:hidden"),
            t("wpe.weight", "fixed:positions", "out:hidden"),
            t("h.{layer}.ln_1.weight", "norm:hidden"),
            t("h.{layer}.ln_1.bias", "norm:hidden"),
            t("h.{layer}.attn.c_attn.weight", "in:hidden", "out:q+kv+kv"),
            t("h.{layer}.attn.c_attn.bias", "out:q+kv+kv"),
            t("h.{layer}.attn.c_proj.weight", "in:q", "out:hidden", residual_out=True),
            t("h.{layer}.attn.c_proj.bias", "out:hidden", residual_out=True),
            t("h.{layer}.ln_2.weight", "norm:hidden"),
            t("h.{layer}.ln_2.bias", "norm:hidden"),
            t("h.{layer}.mlp.c_fc.weight", "in:hidden", "out:ffn"),
            t("h.{layer}.mlp.c_fc.bias", "out:ffn"),
            t("h.{layer}.mlp.c_proj.weight", "in:ffn", "out:hidden", residual_out=True),
            t("h.{layer}.mlp.c_proj.bias", "out:hidden", residual_out=True),
            t("ln_f.weight", "norm:hidden"),
            t("ln_f.bias", "norm:hidden"),
        ),
        build_config=build_config,
        classifier=SCORE,
        reference="Radford et al. 2019, Language Models are Unsupervised Multitask Learners (GPT-2), https://cdn.openai.com/better-language-models/language_models_are_unsupervised_multitask_learners.pdf",
        heads=(
            HeadSpec("GPT2Model", "", "hidden"),
            HeadSpec(
                "GPT2LMHeadModel",
                "transformer.",
                "causal_lm",
                tensors=(t("lm_head.weight", "fixed:vocab", "in:hidden"),),
                tied=("lm_head.weight", "transformer.wte.weight"),
                head_norms=("transformer.ln_f.weight", "transformer.ln_f.bias"),
            ),
        ),
    )
)
