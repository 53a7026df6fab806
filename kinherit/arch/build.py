"""A fresh Hugging Face model of a family at given sizes (or the model folder `model.from`).

The family record (`arch.catalog.FAMILIES`) builds the transformers config from the `model:` sizes;
its task (causal or masked LM) decides the Auto class.
"""

from __future__ import annotations

from pathlib import Path

from huggingface_hub.errors import StrictDataclassError
from transformers import (
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from kinherit.arch.catalog import FAMILIES
from kinherit.arch.spec import ModelSizes
from kinherit.errors import KinheritError
from kinherit.hf_folder import (
    find_tokenizer,
    load_lm,
    max_sequence_length,
    read_config,
    vocabulary_signature,
)


def build_model(cfg: ModelSizes, tokenizer: PreTrainedTokenizerBase, seq_len: int) -> PreTrainedModel:
    """A freshly initialised model of `cfg.family` (or the model at `cfg.from`), checked against the
    data: it embeds every id of `tokenizer`, holds `seq_len` positions and, when loaded, was trained
    with this very tokenizer (same vocabulary signature)."""
    if cfg.from_ is None:
        family = FAMILIES.lookup(cfg.family)
        try:
            hf_config = family.build_config(cfg, len(tokenizer), cfg.positions(seq_len))
        except (
            ValueError,
            TypeError,
            StrictDataclassError,
        ) as err:  # transformers' own checks (e.g. RoPE needs an even head_dim)
            cause = err.__cause__ or err
            raise KinheritError(
                f"transformers rejects this {cfg.family} model: {str(cause).strip().splitlines()[0]}"
            ) from None
        auto = AutoModelForMaskedLM if family.task == "masked" else AutoModelForCausalLM
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
