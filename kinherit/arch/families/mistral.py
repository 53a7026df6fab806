"""Mistral: Llama's tensors; its sliding window is a config field that growth copies."""

from transformers import MistralConfig

from kinherit.arch.catalog import register_family
from kinherit.arch.families._shared import LLAMA_BASE, LLAMA_KEYS, SCORE, causal_lm_heads, decoder_config
from kinherit.arch.spec import FamilySpec, MoeTarget

register_family(
    FamilySpec(
        name="mistral",
        model_types=("mistral",),
        config=LLAMA_KEYS,
        residual="pre_norm",
        base_tensors=LLAMA_BASE,
        build_config=decoder_config(MistralConfig),
        classifier=SCORE,
        reference="Jiang et al. 2023, Mistral 7B, https://arxiv.org/abs/2310.06825",
        heads=causal_lm_heads("Mistral"),
        upcycle=MoeTarget("mixtral", "Mistral", "Mixtral", "num_local_experts", "intermediate_size"),
    )
)
