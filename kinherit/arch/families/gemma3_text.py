"""Gemma 3 (text): Gemma 2's layout plus per-head (1 + w) q/k norms, a 5:1 local:global layer pattern
with its own local RoPE base, no soft-capping by default (see `_gemma`)."""

from transformers import Gemma3TextConfig

from kinherit.arch.catalog import register_family
from kinherit.arch.families._gemma import (
    GEMMA_ATTENTION,
    GEMMA_EMBEDDING,
    GEMMA_FINAL_NORM,
    GEMMA_MLP,
    GEMMA_QK_NORMS,
    gemma_config,
    gemma_heads,
)
from kinherit.arch.families._shared import LLAMA_KEYS, SCORE
from kinherit.arch.spec import FamilySpec

register_family(
    FamilySpec(
        name="gemma3_text",
        model_types=("gemma3_text",),
        config=LLAMA_KEYS,
        residual="pre_norm",
        base_tensors=GEMMA_EMBEDDING + GEMMA_ATTENTION + GEMMA_QK_NORMS + GEMMA_MLP + GEMMA_FINAL_NORM,
        build_config=gemma_config(Gemma3TextConfig, layer_types=True),
        classifier=SCORE,
        reference="Gemma Team 2025, Gemma 3 Technical Report, https://arxiv.org/abs/2503.19786",
        heads=gemma_heads("Gemma3TextModel", "Gemma3ForCausalLM"),
        tiny_fields=(("sliding_window", 4),),
    )
)
