"""Tiny models of every supported family, with *all* parameters randomized (trained-like norms
and biases: a freshly initialized LayerNorm is gamma=1, beta=0, which hides post-norm effects)."""

from __future__ import annotations

import torch
import transformers

VOCAB = 97


def registry_config(family: str, *, tied: bool = True, gqa: bool = False, vocab: int = VOCAB, **overrides):
    """The tiny config a family record builds from `model:` sizes: hidden 32, 2 layers, 4 heads (2 kv-heads
    with `gqa`), FFN 64, plus the record's `tiny_fields` (the quirks its tests exercise)."""
    from kinherit.arch import FAMILIES
    from kinherit.config import ModelConfig

    sizes = {
        "hidden_size": 32,
        "num_layers": 2,
        "num_heads": 4,
        "intermediate_size": 64,
        "num_kv_heads": 2 if gqa else None,
        "tie_word_embeddings": tied,
        **overrides,
    }
    config = FAMILIES[family].build_config(ModelConfig(family=family, **sizes), vocab, 64)
    for key, value in FAMILIES[family].tiny_fields:
        setattr(config, key, value)
    return config


def tiny_config(family: str, *, tied: bool = True, gqa: bool = False):
    """The hand-written tiny configs of the first families; any other family's comes from its record."""
    if family not in ARCH:
        return registry_config(family, tied=tied, gqa=gqa)
    common = dict(vocab_size=VOCAB, tie_word_embeddings=tied)
    if family == "gpt2":
        return transformers.GPT2Config(
            n_embd=32, n_layer=2, n_head=4, n_positions=32, bos_token_id=0, eos_token_id=0, **common
        )
    if family in ("llama", "mistral", "qwen2"):
        cls = {
            "llama": transformers.LlamaConfig,
            "mistral": transformers.MistralConfig,
            "qwen2": transformers.Qwen2Config,
        }[family]
        return cls(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2 if gqa else 4,
            max_position_embeddings=64,
            **common,
        )
    cls = {"bert": transformers.BertConfig, "roberta": transformers.RobertaConfig}[family]
    return cls(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=40,
        **common,
    )


ARCH = {
    "gpt2": "GPT2LMHeadModel",
    "llama": "LlamaForCausalLM",
    "mistral": "MistralForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "bert": "BertForMaskedLM",
    "roberta": "RobertaForMaskedLM",
}
BASE = {
    "gpt2": "GPT2Model",
    "llama": "LlamaModel",
    "mistral": "MistralModel",
    "qwen2": "Qwen2Model",
    "bert": "BertModel",
    "roberta": "RobertaModel",
}


def tiny_model(family: str, *, tied: bool = True, gqa: bool = False, base: bool = False, seed: int = 0, config=None):
    """A randomized tiny model (of `config`, default `tiny_config`); `base=True` gives the bare body (e.g.
    BertModel)."""
    from kinherit.arch import FAMILIES

    torch.manual_seed(seed)
    record = FAMILIES[family]
    arch = (
        (BASE.get(family) or record.heads[0].architecture)
        if base
        else (ARCH.get(family) or record.lm_head.architecture)
    )
    model = getattr(transformers, arch)(config or tiny_config(family, tied=tied, gqa=gqa))
    return randomize(model)


def randomize(model):
    """Every parameter random: norm gains around 1 (0.3 spread), everything else N(0, 0.1²). A norm the
    family parametrises as offset + w (Gemma's 1 + w) gets w = gain − offset, non-zero around 0."""
    offsets = _offsets(model)
    with torch.no_grad():
        for name, p in model.named_parameters():
            norm = any(tag in name.lower() for tag in ("norm", "ln_")) and name.endswith("weight")
            p.copy_((1.0 + 0.3 * torch.randn_like(p) - offsets.get(name, 0.0)) if norm else 0.1 * torch.randn_like(p))
    return model.eval()


def _offsets(model) -> dict[str, float]:
    """Parameter name -> the offset of its (offset + w) parametrisation, from the family record."""
    from kinherit.arch import bind, detect, read_shape
    from kinherit.errors import KinheritError

    try:
        family, head = detect(model.config, type(model).__name__)
    except KinheritError:
        return {}
    bound = bind(family.tensors(head.architecture), read_shape(family, model.config), model.state_dict())
    return {b.key: b.spec.offset for b in bound if b.spec.offset}
