"""Llama: pre-RMSNorm, RoPE, grouped-query attention, SwiGLU MLP, optional biases."""

from transformers import LlamaConfig

from kinherit.arch.catalog import register_family
from kinherit.arch.families._shared import LLAMA_BASE, LLAMA_KEYS, SCORE, causal_lm_heads, decoder_config
from kinherit.arch.spec import FamilySpec, MoeTarget

register_family(
    FamilySpec(
        name="llama",
        model_types=("llama",),
        config=LLAMA_KEYS,
        residual="pre_norm",
        base_tensors=LLAMA_BASE,
        build_config=decoder_config(LlamaConfig),
        classifier=SCORE,
        reference="Touvron et al. 2023, LLaMA: Open and Efficient Foundation Language Models, https://arxiv.org/abs/2302.13971",
        heads=causal_lm_heads("Llama"),
        upcycle=MoeTarget("mixtral", "Llama", "Mixtral", "num_local_experts", "intermediate_size"),
    )
)
