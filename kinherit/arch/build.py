"""A fresh Hugging Face model of a family at given sizes (or the model folder `model.from`).

Decoder families (gpt2, llama, mistral, qwen2) train as causal LMs; encoder families (bert,
roberta) as masked LMs. `CONFIG_BUILDERS` maps a family name to a function
`(ModelConfig, vocab, positions) -> transformers.PretrainedConfig`; the task decides the Auto class.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from huggingface_hub.errors import StrictDataclassError
from transformers import (
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    BertConfig,
    GPT2Config,
    LlamaConfig,
    MistralConfig,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Qwen2Config,
    RobertaConfig,
)

from kinherit.errors import KinheritError
from kinherit.hf_folder import (
    ROBERTA_POSITION_OFFSET,
    find_tokenizer,
    load_lm,
    max_sequence_length,
    read_config,
    task_of,
    vocabulary_signature,
)
from kinherit.registry import Registry

if TYPE_CHECKING:
    from kinherit.config import ModelConfig

ConfigBuilder = Callable[["ModelConfig", int, int], PretrainedConfig]
CONFIG_BUILDERS: Registry[ConfigBuilder] = Registry("family")
register_config_builder = CONFIG_BUILDERS.register


PAPERS = {
    "gpt2": "Radford et al. 2019, Language Models are Unsupervised Multitask Learners (GPT-2), https://cdn.openai.com/better-language-models/language_models_are_unsupervised_multitask_learners.pdf",
    "llama": "Touvron et al. 2023, LLaMA: Open and Efficient Foundation Language Models, https://arxiv.org/abs/2302.13971",
    "mistral": "Jiang et al. 2023, Mistral 7B, https://arxiv.org/abs/2310.06825",
    "qwen2": "Yang et al. 2024, Qwen2 Technical Report, https://arxiv.org/abs/2407.10671",
    "bert": "Devlin et al. 2019, BERT, https://arxiv.org/abs/1810.04805",
    "roberta": "Liu et al. 2019, RoBERTa, https://arxiv.org/abs/1907.11692",
}
"""Where each family comes from (its registry reference)."""


def _ffn(cfg: ModelConfig, gated: bool) -> int:
    if cfg.intermediate_size is not None:
        return cfg.intermediate_size
    if gated:  # SwiGLU: 2/3 of 4·d keeps the parameter count of a 4·d MLP; rounded up to 8
        return -(-int(8 * cfg.hidden_size / 3) // 8) * 8
    return 4 * cfg.hidden_size


@register_config_builder("gpt2", PAPERS["gpt2"])
def _gpt2(cfg: ModelConfig, vocab: int, positions: int) -> PretrainedConfig:
    return GPT2Config(
        vocab_size=vocab, n_positions=positions, n_embd=cfg.hidden_size, n_layer=cfg.num_layers,
        n_head=cfg.num_heads, n_inner=_ffn(cfg, gated=False), resid_pdrop=cfg.dropout, embd_pdrop=cfg.dropout,
        attn_pdrop=cfg.dropout, tie_word_embeddings=cfg.tie_word_embeddings,
    )


def _llama_like(config_cls: type[PretrainedConfig]) -> ConfigBuilder:
    def build(cfg: ModelConfig, vocab: int, positions: int) -> PretrainedConfig:
        return config_cls(
            vocab_size=vocab, max_position_embeddings=positions, hidden_size=cfg.hidden_size,
            num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads,
            num_key_value_heads=cfg.num_kv_heads or cfg.num_heads, intermediate_size=_ffn(cfg, gated=True),
            attention_dropout=cfg.dropout, tie_word_embeddings=cfg.tie_word_embeddings,
        )

    return build


register_config_builder("llama", PAPERS["llama"])(_llama_like(LlamaConfig))
register_config_builder("mistral", PAPERS["mistral"])(_llama_like(MistralConfig))
register_config_builder("qwen2", PAPERS["qwen2"])(_llama_like(Qwen2Config))


def _encoder(config_cls: type[PretrainedConfig], position_offset: int) -> ConfigBuilder:
    def build(cfg: ModelConfig, vocab: int, positions: int) -> PretrainedConfig:
        return config_cls(
            vocab_size=vocab, max_position_embeddings=positions + position_offset, hidden_size=cfg.hidden_size,
            num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads,
            intermediate_size=_ffn(cfg, gated=False), hidden_dropout_prob=cfg.dropout,
            attention_probs_dropout_prob=cfg.dropout, tie_word_embeddings=cfg.tie_word_embeddings,
            type_vocab_size=1 if position_offset else 2,
        )

    return build


register_config_builder("bert", PAPERS["bert"])(_encoder(BertConfig, 0))
register_config_builder("roberta", PAPERS["roberta"])(_encoder(RobertaConfig, ROBERTA_POSITION_OFFSET))


def build_model(cfg: ModelConfig, tokenizer: PreTrainedTokenizerBase, seq_len: int) -> PreTrainedModel:
    """A freshly initialised model of `cfg.family` (or the model at `cfg.from`), checked against the
    data: it embeds every id of `tokenizer`, holds `seq_len` positions and, when loaded, was trained
    with this very tokenizer (same vocabulary signature)."""
    if cfg.from_ is None:
        try:
            hf_config = CONFIG_BUILDERS.lookup(cfg.family)(cfg, len(tokenizer), cfg.max_position_embeddings or seq_len)
        except (ValueError, TypeError, StrictDataclassError) as err:  # transformers' own checks (e.g. RoPE needs an even head_dim)
            cause = err.__cause__ or err
            raise KinheritError(f"transformers rejects this {cfg.family} model: {str(cause).strip().splitlines()[0]}") from None
        auto = AutoModelForMaskedLM if task_of(hf_config) == "masked" else AutoModelForCausalLM
        model = auto.from_config(hf_config, dtype="float32")
        check_compatible(model.config, len(tokenizer), seq_len)
        return model
    check_compatible(read_config(cfg.from_, "model.from"), len(tokenizer), seq_len)
    check_own_tokenizer(cfg.from_, tokenizer)
    return load_lm(cfg.from_, "model.from")


def check_own_tokenizer(folder: str | Path, tokenizer: PreTrainedTokenizerBase) -> None:
    """A loaded model must be fed ids of the tokenizer it was trained with: same vocabulary, merges
    and added tokens (`vocabulary_signature`), not merely the same size, or every embedding row
    would stand for another token."""
    own = find_tokenizer(folder)
    if own is None:
        raise KinheritError(
            f"model.from {folder} has no tokenizer, so kinherit cannot check that the data is tokenized the way "
            "the model was trained; copy the model's tokenizer files into it"
        )
    if vocabulary_signature(own) != vocabulary_signature(tokenizer):
        raise KinheritError(
            f"model.from {folder} was trained with another tokenizer ({len(own)} tokens) than the data's "
            f"({len(tokenizer)} tokens, {tokenizer.name_or_path}); its embeddings would be misaligned: "
            f"set data.tokenizer.path to {folder}"
        )


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
