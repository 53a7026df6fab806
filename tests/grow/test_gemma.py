"""Gemma's quirks under growth, checked on the grown weights and configs themselves (the operator
matrix checks the logits): √d embedding scale, (1 + w) norms, per-layer attention types."""

from __future__ import annotations

import math

import torch
from tiny_models import tiny_model

from kinherit.grow import grow


def test_embedding_and_tied_final_norm_act_on_the_effective_scale():
    """Clone ×2 of a tied Gemma: E' = E[:, idx]·√(32/64), so √64·E' = √32·E on every copy; the tied head
    then reads 2 copies scaled by 1/√2, so the final norm's effective gain is (1 + w)/√2 (not w/√2)."""
    source = tiny_model("gemma2", gqa=True)
    growth = grow(source, hidden_size=64, noise_db=None, verify=True)
    assert growth.report.max_deviation <= 1e-5
    old, new = source.state_dict(), growth.model.state_dict()
    idx = torch.arange(64) % 32
    torch.testing.assert_close(
        new["model.embed_tokens.weight"], old["model.embed_tokens.weight"][:, idx] / math.sqrt(2), rtol=0, atol=1e-7
    )
    assert float(old["model.norm.weight"].abs().min()) > 1e-3  # w itself is non-zero, so w/√2 would be wrong
    torch.testing.assert_close(
        1 + new["model.norm.weight"], (1 + old["model.norm.weight"][idx]) / math.sqrt(2), rtol=0, atol=1e-6
    )
    torch.testing.assert_close(
        new["model.layers.0.input_layernorm.weight"], old["model.layers.0.input_layernorm.weight"][idx]
    )
    assert float(growth.model.model.embed_tokens.embed_scale) == 8.0


def test_per_layer_attention_types_follow_the_layer_map():
    """Gemma 3 sliding (local) then full (global) layers: 2× depth keeps each new layer next to its source,
    with its attention type; window, softmax scale and RoPE bases are kept."""
    source = tiny_model("gemma3_text", gqa=True)
    assert source.config.layer_types == ["sliding_attention", "full_attention"]
    grown = grow(source, hidden_size=64, num_layers=4, verify=True)
    assert grown.report.max_deviation <= 1e-5
    config = grown.model.config
    assert config.layer_types == ["sliding_attention", "sliding_attention", "full_attention", "full_attention"]
    assert (config.sliding_window, config.query_pre_attn_scalar, config.head_dim) == (4, 8, 8)
    assert config.rope_parameters == source.config.rope_parameters
    assert [layer.self_attn.sliding_window for layer in grown.model.model.layers] == [4, 4, None, None]


def test_gemma2_soft_caps_are_kept():
    source = tiny_model("gemma2")
    config = grow(source, hidden_size=64, verify=False).model.config
    assert (config.attn_logit_softcapping, config.final_logit_softcapping) == (2.0, 5.0)
    assert config.layer_types == source.config.layer_types == ["sliding_attention", "full_attention"]
