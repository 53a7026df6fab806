"""OLMoE: OLMo's attention with q/k RMSNorms over the *whole* projected q and kv width (not per head) and a
sparse mixture of gated-MLP experts (top-k weights not renormalised by default).

The whole-width q/k norms make `q` and `kv` normalised spaces: growth is exact only when every head is copied
equally often (integer multiples). transformers has no `OlmoeForSequenceClassification`, so the record has no
classifier head and `kinherit recycle` / `finetune` refuse an OLMoE model with a one-line error."""

from transformers import OlmoeConfig

from kinherit.arch.catalog import register_family
from kinherit.arch.families._moe import POST_ATTENTION_NORM, SPARSE_BLOCK, moe_config, moe_keys
from kinherit.arch.families._shared import LLAMA_ATTENTION, LLAMA_EMBEDDING, LLAMA_FINAL_NORM, causal_lm_heads
from kinherit.arch.spec import FamilySpec, t

KEYS = moe_keys(ffn="intermediate_size", experts="num_experts")
WHOLE_WIDTH_QK_NORMS = (
    t("layers.{layer}.self_attn.q_norm.weight", "norm:q"),
    t("layers.{layer}.self_attn.k_norm.weight", "norm:kv"),
)

register_family(
    FamilySpec(
        name="olmoe",
        model_types=("olmoe",),
        config=KEYS,
        residual="pre_norm",
        base_tensors=LLAMA_EMBEDDING
        + LLAMA_ATTENTION
        + WHOLE_WIDTH_QK_NORMS
        + POST_ATTENTION_NORM
        + SPARSE_BLOCK
        + LLAMA_FINAL_NORM,
        build_config=moe_config(OlmoeConfig, KEYS, pad_token_id=None, bos_token_id=None, eos_token_id=None),
        classifier=(),
        reference="Muennighoff et al. 2024, OLMoE: Open Mixture-of-Experts Language Models, https://arxiv.org/abs/2409.02060",
        heads=causal_lm_heads("Olmoe"),
        normalized_spaces=("hidden", "q", "kv"),
    )
)
