"""Gemma 2: √d-scaled embedding, (1 + w) RMSNorms before and after each sublayer, attention and
final-logit soft-capping, alternating sliding-window layers, tied embeddings (see `_gemma`)."""

from transformers import Gemma2Config

from kinherit.arch.catalog import register_family
from kinherit.arch.families._gemma import (
    GEMMA_ATTENTION,
    GEMMA_EMBEDDING,
    GEMMA_FINAL_NORM,
    GEMMA_MLP,
    gemma_config,
    gemma_heads,
)
from kinherit.arch.families._shared import LLAMA_KEYS, SCORE
from kinherit.arch.spec import FamilySpec

register_family(
    FamilySpec(
        name="gemma2",
        model_types=("gemma2",),
        config=LLAMA_KEYS,
        residual="pre_norm",
        base_tensors=GEMMA_EMBEDDING + GEMMA_ATTENTION + GEMMA_MLP + GEMMA_FINAL_NORM,
        build_config=gemma_config(Gemma2Config, layer_types=False),
        classifier=SCORE,
        reference="Gemma Team 2024, Gemma 2: Improving Open Language Models at a Practical Size, https://arxiv.org/abs/2408.00118",
        heads=gemma_heads("Gemma2Model", "Gemma2ForCausalLM"),
        tiny_fields=(("sliding_window", 4), ("attn_logit_softcapping", 2.0), ("final_logit_softcapping", 5.0)),
    )
)
