"""Mixtral: Mistral's attention with a sparse mixture of gated-MLP experts (top-k routing renormalised to sum 1)."""

from transformers import MixtralConfig

from kinherit.arch.catalog import register_family
from kinherit.arch.families._moe import POST_ATTENTION_NORM, SPARSE_BLOCK, moe_config, moe_keys
from kinherit.arch.families._shared import LLAMA_ATTENTION, LLAMA_EMBEDDING, LLAMA_FINAL_NORM, SCORE, causal_lm_heads
from kinherit.arch.spec import FamilySpec

KEYS = moe_keys(ffn="intermediate_size", experts="num_local_experts")

register_family(
    FamilySpec(
        name="mixtral",
        model_types=("mixtral",),
        config=KEYS,
        residual="pre_norm",
        base_tensors=LLAMA_EMBEDDING + LLAMA_ATTENTION + POST_ATTENTION_NORM + SPARSE_BLOCK + LLAMA_FINAL_NORM,
        build_config=moe_config(MixtralConfig, KEYS),
        classifier=SCORE,
        reference="Jiang et al. 2024, Mixtral of Experts, https://arxiv.org/abs/2401.04088",
        heads=causal_lm_heads("Mixtral"),
    )
)
