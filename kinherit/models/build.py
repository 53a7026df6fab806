"""Build a Hugging Face model from a family name and sizes, or load one from a folder.

Decoder families (gpt2, llama, mistral, qwen2) train as causal LMs; encoder families (bert,
roberta) as masked LMs. The registry maps a family to a function `(ModelConfig, vocab, positions)
-> transformers.PretrainedConfig`; the task decides the Auto class.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    BertConfig,
    GPT2Config,
    LlamaConfig,
    MistralConfig,
    PretrainedConfig,
    PreTrainedModel,
    Qwen2Config,
    RobertaConfig,
)

from kinherit.config import ModelConfig
from kinherit.errors import KinheritError
from kinherit.registry import Registry

Task = Literal["causal", "masked"]
MASKED_MODEL_TYPES = {"bert", "roberta", "xlm-roberta", "distilbert", "electra", "deberta", "deberta-v2", "modernbert"}
ROBERTA_POSITION_OFFSET = 2  # RoBERTa positions start at padding_idx + 1

FamilyBuilder = Callable[[ModelConfig, int, int], PretrainedConfig]
FAMILY_BUILDERS: Registry[FamilyBuilder] = Registry("family")
register_family = FAMILY_BUILDERS.register


def _ffn(cfg: ModelConfig, gated: bool) -> int:
    if cfg.intermediate_size is not None:
        return cfg.intermediate_size
    if gated:  # SwiGLU: 2/3 of 4·d keeps the parameter count of a 4·d MLP; rounded up to 8
        return -(-int(8 * cfg.hidden_size / 3) // 8) * 8
    return 4 * cfg.hidden_size


@register_family("gpt2")
def _gpt2(cfg: ModelConfig, vocab: int, positions: int) -> PretrainedConfig:
    return GPT2Config(
        vocab_size=vocab, n_positions=positions, n_embd=cfg.hidden_size, n_layer=cfg.num_layers,
        n_head=cfg.num_heads, n_inner=_ffn(cfg, gated=False), resid_pdrop=cfg.dropout, embd_pdrop=cfg.dropout,
        attn_pdrop=cfg.dropout, tie_word_embeddings=cfg.tie_word_embeddings,
    )


def _llama_like(config_cls: type[PretrainedConfig]) -> FamilyBuilder:
    def build(cfg: ModelConfig, vocab: int, positions: int) -> PretrainedConfig:
        return config_cls(
            vocab_size=vocab, max_position_embeddings=positions, hidden_size=cfg.hidden_size,
            num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads,
            num_key_value_heads=cfg.num_kv_heads or cfg.num_heads, intermediate_size=_ffn(cfg, gated=True),
            attention_dropout=cfg.dropout, tie_word_embeddings=cfg.tie_word_embeddings,
        )

    return build


register_family("llama")(_llama_like(LlamaConfig))
register_family("mistral")(_llama_like(MistralConfig))
register_family("qwen2")(_llama_like(Qwen2Config))


def _encoder(config_cls: type[PretrainedConfig], position_offset: int) -> FamilyBuilder:
    def build(cfg: ModelConfig, vocab: int, positions: int) -> PretrainedConfig:
        return config_cls(
            vocab_size=vocab, max_position_embeddings=positions + position_offset, hidden_size=cfg.hidden_size,
            num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads,
            intermediate_size=_ffn(cfg, gated=False), hidden_dropout_prob=cfg.dropout,
            attention_probs_dropout_prob=cfg.dropout, tie_word_embeddings=cfg.tie_word_embeddings,
            type_vocab_size=1 if position_offset else 2,
        )

    return build


register_family("bert")(_encoder(BertConfig, 0))
register_family("roberta")(_encoder(RobertaConfig, ROBERTA_POSITION_OFFSET))


def task_of(config: PretrainedConfig) -> Task:
    """Masked LM for encoder model types, causal LM for everything else."""
    return "masked" if config.model_type in MASKED_MODEL_TYPES else "causal"


def max_sequence_length(config: PretrainedConfig) -> int | None:
    """How many tokens one sequence may hold (RoBERTa reserves the first two positions)."""
    positions = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    if positions is None:
        return None
    return positions - (ROBERTA_POSITION_OFFSET if config.model_type in {"roberta", "xlm-roberta"} else 0)


def load_pretrained_config(path: str | Path) -> PretrainedConfig:
    path = Path(path)
    if not (path / "config.json").is_file():
        raise KinheritError(f"{path} is not a Hugging Face model folder (no config.json)")
    return AutoConfig.from_pretrained(str(path))


def load_model(path: str | Path) -> PreTrainedModel:
    """Load an HF model folder for its pre-training task (safetensors; no remote code)."""
    config = load_pretrained_config(path)
    auto = AutoModelForMaskedLM if task_of(config) == "masked" else AutoModelForCausalLM
    try:
        return auto.from_pretrained(str(path), dtype="float32")
    except (OSError, ValueError) as err:
        raise KinheritError(f"cannot load the model in {path}: {str(err).splitlines()[0]}") from None


def build_model(cfg: ModelConfig, vocab_size: int, seq_len: int) -> PreTrainedModel:
    """A freshly initialised model of `cfg.family` (or the model at `cfg.from`), checked against the data."""
    if cfg.from_ is not None:
        model = load_model(cfg.from_)
    else:
        hf_config = FAMILY_BUILDERS.lookup(cfg.family)(cfg, vocab_size, cfg.max_position_embeddings or seq_len)
        auto = AutoModelForMaskedLM if task_of(hf_config) == "masked" else AutoModelForCausalLM
        model = auto.from_config(hf_config, dtype="float32")
    check_compatible(model.config, vocab_size, seq_len)
    return model


def check_compatible(config: PretrainedConfig, vocab_size: int, seq_len: int) -> None:
    """The model must embed every token id of the tokenizer and hold `seq_len` positions."""
    if vocab_size > config.vocab_size:
        raise KinheritError(
            f"the tokenizer has {vocab_size} tokens but the model's embedding holds {config.vocab_size}; "
            "use the model's own tokenizer (data.tokenizer.path) or a model with a larger vocabulary"
        )
    limit = max_sequence_length(config)
    if limit is not None and seq_len > limit:
        raise KinheritError(f"data.seq_len {seq_len} exceeds the model's {limit} positions; lower data.seq_len")
