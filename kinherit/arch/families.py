"""The supported families, as data. Adding a family = adding a table here (and a test model).

Axis notation: see `spec.py`. nn.Linear weights are (out, in); GPT-2's Conv1D weights are (in, out).
"""

from __future__ import annotations

from kinherit.arch.catalog import register_family
from kinherit.arch.spec import ConfigKeys, FamilySpec, HeadSpec, t

# --- GPT-2: pre-norm, fused qkv Conv1D, learned positions, tied LM head -------------------------
GPT2 = register_family(
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

# --- Llama / Mistral / Qwen2: pre-RMSNorm, RoPE, grouped-query attention, optional biases --------
_LLAMA_BASE = (
    t("embed_tokens.weight", "fixed:vocab", "out:hidden"),
    t("layers.{layer}.input_layernorm.weight", "norm:hidden"),
    t("layers.{layer}.self_attn.q_proj.weight", "out:q", "in:hidden"),
    t("layers.{layer}.self_attn.q_proj.bias", "out:q", optional=True),
    t("layers.{layer}.self_attn.k_proj.weight", "out:kv", "in:hidden"),
    t("layers.{layer}.self_attn.k_proj.bias", "out:kv", optional=True),
    t("layers.{layer}.self_attn.v_proj.weight", "out:kv", "in:hidden"),
    t("layers.{layer}.self_attn.v_proj.bias", "out:kv", optional=True),
    t("layers.{layer}.self_attn.o_proj.weight", "out:hidden", "in:q", residual_out=True),
    t("layers.{layer}.self_attn.o_proj.bias", "out:hidden", optional=True, residual_out=True),
    t("layers.{layer}.post_attention_layernorm.weight", "norm:hidden"),
    t("layers.{layer}.mlp.gate_proj.weight", "out:ffn", "in:hidden"),
    t("layers.{layer}.mlp.gate_proj.bias", "out:ffn", optional=True),
    t("layers.{layer}.mlp.up_proj.weight", "out:ffn", "in:hidden"),
    t("layers.{layer}.mlp.up_proj.bias", "out:ffn", optional=True),
    t("layers.{layer}.mlp.down_proj.weight", "out:hidden", "in:ffn", residual_out=True),
    t("layers.{layer}.mlp.down_proj.bias", "out:hidden", optional=True, residual_out=True),
    t("norm.weight", "norm:hidden"),
)
_LLAMA_KEYS = ConfigKeys(
    hidden="hidden_size",
    ffn="intermediate_size",
    heads="num_attention_heads",
    layers="num_hidden_layers",
    kv_heads="num_key_value_heads",
    head_dim="head_dim",
)


def _causal_lm_heads(prefix: str) -> tuple[HeadSpec, ...]:
    return (
        HeadSpec(f"{prefix}Model", "", "hidden"),
        HeadSpec(
            f"{prefix}ForCausalLM",
            "model.",
            "causal_lm",
            tensors=(t("lm_head.weight", "fixed:vocab", "in:hidden"),),
            tied=("lm_head.weight", "model.embed_tokens.weight"),
            head_norms=("model.norm.weight",),
        ),
    )


for _name, _prefix in (("llama", "Llama"), ("mistral", "Mistral"), ("qwen2", "Qwen2")):
    register_family(
        FamilySpec(
            name=_name,
            model_types=(_name,),
            config=_LLAMA_KEYS,
            residual="pre_norm",
            base_tensors=_LLAMA_BASE,
            heads=_causal_lm_heads(_prefix),
        )
    )

# --- BERT / RoBERTa: post-LayerNorm encoder, MLM head tied to the word embeddings ---------------
_BERT_BASE = (
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
_BERT_KEYS = ConfigKeys(
    hidden="hidden_size", ffn="intermediate_size", heads="num_attention_heads", layers="num_hidden_layers"
)


def _mlm_head(architecture: str, prefix: str, root: str, transform: str, norm: str) -> HeadSpec:
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


BERT = register_family(
    FamilySpec(
        name="bert",
        model_types=("bert",),
        config=_BERT_KEYS,
        residual="post_norm",
        base_tensors=_BERT_BASE,
        heads=(
            HeadSpec("BertModel", "", "hidden"),
            _mlm_head("BertForMaskedLM", "bert.", "cls.predictions", "cls.predictions.transform", "LayerNorm"),
        ),
    )
)

ROBERTA = register_family(
    FamilySpec(
        name="roberta",
        model_types=("roberta",),
        config=_BERT_KEYS,
        residual="post_norm",
        base_tensors=_BERT_BASE,
        heads=(
            HeadSpec("RobertaModel", "", "hidden"),
            _mlm_head("RobertaForMaskedLM", "roberta.", "lm_head", "lm_head", "layer_norm"),
        ),
    )
)
