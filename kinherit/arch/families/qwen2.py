"""Qwen2: Llama's tensors with q/k/v biases."""

from transformers import Qwen2Config

from kinherit.arch.catalog import register_family
from kinherit.arch.families._shared import LLAMA_BASE, LLAMA_KEYS, SCORE, causal_lm_heads, decoder_config
from kinherit.arch.spec import FamilySpec, MoeTarget

register_family(
    FamilySpec(
        name="qwen2",
        model_types=("qwen2",),
        config=LLAMA_KEYS,
        residual="pre_norm",
        base_tensors=LLAMA_BASE,
        build_config=decoder_config(Qwen2Config),
        classifier=SCORE,
        reference="Yang et al. 2024, Qwen2 Technical Report, https://arxiv.org/abs/2407.10671",
        heads=causal_lm_heads("Qwen2"),
        upcycle=MoeTarget(
            "qwen2_moe",
            "Qwen2",
            "Qwen2Moe",
            "num_experts",
            "moe_intermediate_size",
            shared_expert=True,
            fixed=(("norm_topk_prob", True),),
        ),
    )
)
