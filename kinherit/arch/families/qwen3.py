"""Qwen3: Llama's tensors without q/k/v biases, plus per-head RMSNorms on queries and keys.

`q_norm`/`k_norm` hold head_dim weights shared by every head and normalise each head on its own:
growth adds whole heads and keeps head_dim, so they never grow (copied as they are).
"""

from __future__ import annotations

from transformers import PretrainedConfig, Qwen3Config

from kinherit.arch.catalog import register_family
from kinherit.arch.families._shared import (
    LLAMA_ATTENTION,
    LLAMA_EMBEDDING,
    LLAMA_FINAL_NORM,
    LLAMA_KEYS,
    LLAMA_MLP,
    SCORE,
    causal_lm_heads,
    decoder_config,
)
from kinherit.arch.spec import FamilySpec, ModelSizes, MoeTarget, t

QK_NORMS = (
    t("layers.{layer}.self_attn.q_norm.weight", "fixed:head_dim"),
    t("layers.{layer}.self_attn.k_norm.weight", "fixed:head_dim"),
)


def build_config(cfg: ModelSizes, vocab: int, positions: int) -> PretrainedConfig:
    """Qwen3Config defaults head_dim to 128: derive it from the sizes instead."""
    return decoder_config(Qwen3Config, head_dim=cfg.hidden_size // cfg.num_heads)(cfg, vocab, positions)


register_family(
    FamilySpec(
        name="qwen3",
        model_types=("qwen3",),
        config=LLAMA_KEYS,
        residual="pre_norm",
        base_tensors=LLAMA_EMBEDDING + LLAMA_ATTENTION + QK_NORMS + LLAMA_MLP + LLAMA_FINAL_NORM,
        build_config=build_config,
        classifier=SCORE,
        reference="Yang et al. 2025, Qwen3 Technical Report, https://arxiv.org/abs/2505.09388",
        heads=causal_lm_heads("Qwen3"),
        upcycle=MoeTarget(
            "qwen3_moe", "Qwen3", "Qwen3Moe", "num_experts", "moe_intermediate_size", fixed=(("norm_topk_prob", True),)
        ),
    )
)
