"""Every family table binds exactly to the state dict of a real (tiny) transformers model."""

from __future__ import annotations

import re

import pytest
import torch
import transformers
from tiny_models import tiny_model

from kinherit.arch import FAMILIES, bind, detect, read_shape, supported
from kinherit.errors import KinheritError


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("base", [False, True], ids=["head", "base"])
def test_family_binds_every_tensor(family, base):
    model = tiny_model(family, gqa=FAMILIES[family].config.kv_heads is not None, base=base)
    fam, head = detect(model.config, type(model).__name__)
    assert fam.name == family and head.architecture == type(model).__name__
    state = model.state_dict()
    bound = bind(fam.tensors(head.architecture), read_shape(fam, model.config), state)
    assert {b.key for b in bound} == set(state)


def test_qwen2_binds_qkv_biases():
    fam, head = detect(tiny_model("qwen2").config, "Qwen2ForCausalLM")
    state = tiny_model("qwen2").state_dict()
    keys = {b.key for b in bind(fam.tensors(head.architecture), read_shape(fam, tiny_model("qwen2").config), state)}
    assert "model.layers.1.self_attn.k_proj.bias" in keys


def test_bind_rejects_unknown_and_misshaped_tensors():
    model = tiny_model("llama")
    fam, head = detect(model.config, "LlamaForCausalLM")
    shape = read_shape(fam, model.config)
    state = dict(model.state_dict())
    with pytest.raises(KinheritError, match="does not know"):
        bind(fam.tensors(head.architecture), shape, {**state, "model.extra.weight": torch.zeros(1)})
    state["model.layers.0.mlp.up_proj.weight"] = torch.zeros(65, 32)
    with pytest.raises(KinheritError, match="up_proj.weight has shape"):
        bind(fam.tensors(head.architecture), shape, state)


def test_unknown_family_lists_supported():
    with pytest.raises(KinheritError, match="supported: bert .*gpt2 .*llama"):
        detect(transformers.T5Config())
    assert set(FAMILIES) >= {"gpt2", "llama", "mistral", "qwen2", "bert", "roberta"}
    assert "BertModel" in supported()


@pytest.mark.parametrize("key, value", [("mlp_only_layers", [1]), ("decoder_sparse_step", 2)])
def test_qwen_moe_with_dense_layers_is_refused_naming_the_key(key, value):
    """Dense MLP layers mixed into a Qwen MoE stack are not in the tensor table: a one-line error names the key."""
    from kinherit.grow import make_plan

    config = tiny_model("qwen2_moe").config
    setattr(config, key, value)
    with pytest.raises(KinheritError, match=re.escape(f"qwen2_moe with {key}={value!r} is not supported")):
        make_plan(config, hidden_size=64)


def test_gemma_records_mark_the_norm_offset_and_the_embedding_scale():
    """Gemma's RMSNorms scale by 1 + w (every norm, incl. Gemma 3's per-head q/k norms), its embedding is
    multiplied by √hidden, and new layers are zeroed through the post-sublayer norms, not the projections."""
    for name, qk in (("gemma2", False), ("gemma3_text", True)):
        specs = {s.name: s for s in FAMILIES[name].base_tensors}
        norms = [n for n in specs if "norm" in n]
        assert len(norms) == 5 + 2 * qk and all(specs[n].offset == 1.0 for n in norms)
        assert specs["embed_tokens.weight"].scaled_by_sqrt == "hidden"
        assert {n for n, s in specs.items() if s.residual_out} == {
            "layers.{layer}.post_attention_layernorm.weight",
            "layers.{layer}.post_feedforward_layernorm.weight",
        }


def test_gemma_configs_from_model_sizes():
    """head_dim = hidden/heads, 1/√head_dim softmax scale, tied embeddings, a window of half the positions;
    Gemma 3 gets its 5 local : 1 global pattern (local then global below 6 layers)."""
    from kinherit.config import ModelConfig

    for name in ("gemma2", "gemma3_text"):
        config = FAMILIES[name].build_config(
            ModelConfig(family=name, hidden_size=64, num_heads=4, num_layers=2), 300, 32
        )
        assert (config.head_dim, config.query_pre_attn_scalar, config.sliding_window) == (16, 16, 16)
        assert config.tie_word_embeddings and config.layer_types == ["sliding_attention", "full_attention"]
        assert config.pad_token_id is None  # id 0 would be a padding_idx row that never trains
    deep = FAMILIES["gemma3_text"].build_config(ModelConfig(family="gemma3_text", num_layers=12), 300, 32)
    assert [i for i, kind in enumerate(deep.layer_types) if kind == "full_attention"] == [5, 11]
