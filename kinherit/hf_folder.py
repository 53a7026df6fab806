"""Read and load Hugging Face model folders: config, causal/masked LM, sequence classifier, PEFT
adapter, tokenizer. Every reader of a model folder in kinherit goes through this module.

Invariants: weights come only through `from_pretrained` (safetensors, or `weights_only` torch
files), never with remote code; a load reports missing/unexpected/mismatched keys, and only a
classifier's task head may be missing (it is then freshly initialised). Errors are one line naming
the folder and its role (e.g. `NEW_BASE runs/B is not a Hugging Face model folder (no config.json)`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import torch
import transformers
from safetensors.torch import load_file
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)
from transformers.models.auto.modeling_auto import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES
from transformers.utils import logging as hf_logging

from kinherit.errors import KinheritError

Task = Literal["causal", "masked"]
MASKED_MODEL_TYPES = {"bert", "roberta", "xlm-roberta", "distilbert", "electra", "deberta", "deberta-v2", "modernbert"}
ROBERTA_POSITION_OFFSET = 2  # RoBERTa positions start at padding_idx + 1
ADAPTER_CONFIG = "adapter_config.json"
LABELS_FILE = "labels.json"  # written next to an adapter: the label names its head was trained on
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "spiece.model",
    "chat_template.jinja",
    "chat_template.json",
    "generation_config.json",
)
"""Files copied along with a model (the first nine define a tokenizer)."""


def _named(folder: str | Path, role: str) -> str:
    return f"{role} {folder}" if role else str(folder)


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


# --- the console -------------------------------------------------------------------------------


def tied_names(model: torch.nn.Module) -> set[str]:
    """Parameter names that share their tensor with another name (a tied LM head and its embedding)."""
    owners: dict[int, list[str]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        owners.setdefault(id(param), []).append(name)
    return {name for names in owners.values() if len(names) > 1 for name in names}


class _KnownHarmless(logging.Filter):
    """Drops transformers' notice that checkpoints are ordered by number rather than mtime (kinherit's checkpoint-N
    names sort the same). A tied head called missing at resume is the trainer's to judge (`KinheritTrainer`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("mtime may not be reliable")


HARMLESS_LOGGERS = ("transformers.trainer", "transformers.trainer_utils")
"""The transformers loggers `library_console` filters (`_KnownHarmless`)."""


@contextmanager
def library_console() -> Iterator[None]:
    """The console of a kinherit command: transformers' progress bars ("Loading weights", "Writing model shards")
    off, kinherit drawing the one bar of a run, and its known-harmless messages dropped (`_KnownHarmless`);
    restored after the block (or the decorated function)."""
    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    harmless = _KnownHarmless()
    for name in HARMLESS_LOGGERS:
        logging.getLogger(name).addFilter(harmless)
    try:
        yield
    finally:
        for name in HARMLESS_LOGGERS:
            logging.getLogger(name).removeFilter(harmless)
        if enabled:
            hf_logging.enable_progress_bar()


@contextmanager
def loading_checked_here() -> Iterator[None]:
    """transformers at error verbosity while a loader that checks the loading info itself (every missing,
    unexpected or mismatched key) runs: its LOAD REPORT would call a head kinherit fills itself "newly initialized"."""
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)


# --- configs --------------------------------------------------------------------------------------


def is_adapter(folder: str | Path) -> bool:
    return (Path(folder) / ADAPTER_CONFIG).is_file()


def run_folder_hint(folder: str | Path) -> str:
    """` (it is a run folder: give its model, runs/x/model)` when `folder` is a kinherit run whose model folder is
    inside it; empty otherwise."""
    model = Path(folder) / "model"
    return f" (it is a run folder: give its model, {model})" if (model / "config.json").is_file() else ""


def read_config(folder: str | Path, role: str = "") -> PretrainedConfig:
    """The folder's transformers config; `role` (e.g. OLD_BASE, model.from) names it in errors."""
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        hint = " (it is a PEFT adapter folder: pass --adapter)" if is_adapter(folder) else run_folder_hint(folder)
        if not folder.exists() and not folder.is_absolute():
            hint = f" (it does not exist in {Path.cwd()}, which relative paths resolve against)"
        raise KinheritError(f"{_named(folder, role)} is not a Hugging Face model folder (no config.json){hint}")
    try:
        return AutoConfig.from_pretrained(str(folder), trust_remote_code=False)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise KinheritError(f"{_named(folder, role)}: cannot read config.json ({_first_line(err)})") from None


def require_weights(folder: str | Path, role: str = "") -> None:
    """The folder must hold weights next to its config."""
    if not any((Path(folder) / name).is_file() for name in WEIGHT_FILES):
        raise KinheritError(
            f"{_named(folder, role)} has a config.json but no weights ({' or '.join(WEIGHT_FILES[:2])})"
        )


def read_state_dict(folder: str | Path, role: str = "") -> dict[str, torch.Tensor]:
    """Every tensor of the folder's safetensors weights (one file, or the shards of an index), without
    building a model; tied weights appear once, as `save_pretrained` stores them."""
    folder = Path(folder)
    single, index = folder / "model.safetensors", folder / "model.safetensors.index.json"
    if single.is_file():
        return load_file(str(single))
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return {k: v for shard in shards for k, v in load_file(str(folder / shard)).items()}
    raise KinheritError(f"{_named(folder, role)} has no safetensors weights ({' or '.join(WEIGHT_FILES[:2])})")


def read_model_state(folder: str | Path, role: str = "") -> dict[str, torch.Tensor]:
    """The weights as the model holds them: `read_state_dict`, except for mixture-of-experts models, whose
    fused 3-D expert tensors transformers writes to disk as per-expert matrices (e.g. Mixtral's
    `block_sparse_moe.experts.{e}.w1`); those are loaded through `from_pretrained`, which converts them back."""
    if (
        not (Path(folder) / "config.json").is_file()
        or getattr(read_config(folder, role), "num_experts_per_tok", None) is None
    ):
        return read_state_dict(folder, role)
    return load_lm(folder, role).state_dict()


def task_of(config: PretrainedConfig) -> Task:
    """Masked LM for encoder model types, causal LM for everything else."""
    return "masked" if config.model_type in MASKED_MODEL_TYPES else "causal"


def max_sequence_length(config: PretrainedConfig) -> int | None:
    """How many tokens one sequence may hold (RoBERTa reserves the first two positions)."""
    positions = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    if positions is None:
        return None
    return positions - (ROBERTA_POSITION_OFFSET if config.model_type in {"roberta", "xlm-roberta"} else 0)


def check_positions(config: PretrainedConfig, seq_len: int, role: str) -> None:
    """A sequence of `seq_len` tokens must fit the model's positions (`max_sequence_length`)."""
    limit = max_sequence_length(config)
    if limit is not None and seq_len > limit:
        raise KinheritError(f"data.seq_len {seq_len} exceeds the {limit} positions of {role}; lower data.seq_len")


# --- language models ------------------------------------------------------------------------------


def load_lm(folder: str | Path, role: str = "") -> PreTrainedModel:
    """The folder's model for its pre-training task: `AutoModelForMaskedLM` for encoders, else
    `AutoModelForCausalLM` (fp32)."""
    config = read_config(folder, role)
    auto = AutoModelForMaskedLM if task_of(config) == "masked" else AutoModelForCausalLM
    try:
        return auto.from_pretrained(str(folder), dtype="float32", trust_remote_code=False)
    except (OSError, ValueError) as err:
        raise KinheritError(f"cannot load the model in {_named(folder, role)}: {_first_line(err)}") from None


def load_architecture(folder: str | Path, architecture: str, role: str = "") -> PreTrainedModel:
    """The folder loaded as `transformers.<architecture>` in fp32, eval mode; any missing,
    unexpected or mismatched key is an error (growth needs every tensor)."""
    try:
        with loading_checked_here():
            model, info = getattr(transformers, architecture).from_pretrained(
                str(folder), dtype=torch.float32, output_loading_info=True, trust_remote_code=False
            )
    except (OSError, ValueError) as err:
        raise KinheritError(f"cannot load {_named(folder, role)} as {architecture}: {_first_line(err)}") from None
    bad = {k: sorted(v)[:5] for k, v in info.items() if k != "error_msgs" and v}
    if bad or info.get("error_msgs"):
        raise KinheritError(
            f"loading {_named(folder, role)} as {architecture} did not match its weights: {bad or info['error_msgs']}"
        )
    return model.eval()


# --- sequence classifiers and adapters ------------------------------------------------------------


def is_classifier(config: PretrainedConfig) -> bool:
    return any(a.endswith("ForSequenceClassification") for a in config.architectures or [])


def default_label_names(num_labels: int) -> list[str]:
    """transformers' names for unnamed labels: `LABEL_0`, `LABEL_1`, …"""
    return [f"LABEL_{i}" for i in range(num_labels)]


def labels_of(config: PretrainedConfig) -> list[str]:
    """The label names a classifier config carries (transformers' default `LABEL_i` included)."""
    return [config.id2label[i] for i in range(config.num_labels)]


def check_labels(existing: list[str], wanted: list[str], where: str) -> None:
    """A classifier tuned with `existing` labels serves a task with `wanted` ones when the counts
    agree and the names agree, or the classifier kept transformers' default names (unnamed labels)."""
    if len(existing) != len(wanted):
        raise KinheritError(f"{where} has {len(existing)} labels {existing}, but the task has {len(wanted)}: {wanted}")
    if existing != wanted and existing != default_label_names(len(existing)):
        raise KinheritError(f"{where} was tuned for labels {existing}, but the task has {wanted}")


def head_keys(model: PreTrainedModel) -> set[str]:
    """The task-specific tensors of a sequence classifier: everything outside the base model
    (score / classifier) plus BERT's pooler, which masked-LM checkpoints do not have."""
    prefix = model.base_model_prefix + "."
    return {k for k in model.state_dict() if not k.startswith(prefix) or ".pooler." in f".{k}"}


def head_modules(model: PreTrainedModel) -> list[str]:
    """Names of the head modules (for peft `modules_to_save`): `score`/`classifier`, and `pooler`."""
    prefix = model.base_model_prefix + "."
    return sorted({"pooler" if k.startswith(prefix) else k.split(".")[0] for k in head_keys(model)})


def load_classifier(
    folder: str | Path,
    role: str,
    labels: list[str] | None = None,
    pad_token_id: int | None = None,
) -> tuple[PreTrainedModel, set[str]]:
    """`AutoModelForSequenceClassification` from a base or classifier folder; returns the model and
    the head keys that were freshly initialised. `labels` names the task's classes: a base gets a
    fresh head of that size, a classifier must agree (`check_labels`) and is renamed to them."""
    config = read_config(folder, role)
    if config.model_type not in MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES:
        raise KinheritError(
            f"{_named(folder, role)} is a {config.model_type} model, for which transformers has no "
            "sequence classifier: it cannot be fine-tuned or recycled as one"
        )
    names = labels
    if is_classifier(config):
        existing = labels_of(config)
        if labels is not None:
            check_labels(existing, labels, _named(folder, role))
        names = labels or existing
    if names is None:
        raise KinheritError(f"{_named(folder, role)} is not a sequence classifier and no task labels were given")
    config.num_labels = len(names)
    config.id2label = dict(enumerate(names))
    config.label2id = {name: i for i, name in enumerate(names)}
    if pad_token_id is not None:
        config.pad_token_id = pad_token_id
    config.use_cache = False
    try:
        with loading_checked_here():  # the fresh head is returned, and reported by the caller
            model, info = AutoModelForSequenceClassification.from_pretrained(
                str(folder), config=config, dtype=torch.float32, output_loading_info=True, trust_remote_code=False
            )
    except (OSError, ValueError) as err:
        raise KinheritError(f"cannot load {_named(folder, role)} as a classifier: {_first_line(err)}") from None
    fresh = set(info["missing_keys"])
    heads = head_keys(model)
    if fresh - heads or info["mismatched_keys"]:
        bad = sorted(fresh - heads) or [str(m) for m in info["mismatched_keys"]]
        raise KinheritError(f"{_named(folder, role)}: weights do not match the model, e.g. {bad[0]}")
    return model, fresh


def require_adapter(folder: str | Path, role: str = "adapter") -> None:
    if not is_adapter(folder):
        what = "not found" if not Path(folder).exists() else f"is not a PEFT adapter folder (no {ADAPTER_CONFIG})"
        raise KinheritError(f"{_named(folder, role)} {what}")


def adapter_base(folder: str | Path) -> Path:
    """The base folder a PEFT adapter was trained on (its `base_model_name_or_path`)."""
    require_adapter(folder)
    config = json.loads((Path(folder) / ADAPTER_CONFIG).read_text())
    base = config.get("base_model_name_or_path")
    if not base or not Path(base).is_dir():
        raise KinheritError(f"adapter {folder}: its base model {base!r} is not a local folder")
    return Path(base)


def adapter_labels(folder: str | Path) -> list[str]:
    require_adapter(folder)
    path = Path(folder) / LABELS_FILE
    if not path.is_file():
        raise KinheritError(f"adapter {folder} has no {LABELS_FILE} (write it with kinherit finetune)")
    return list(json.loads(path.read_text())["labels"])


def read_adapter(folder: str | Path, role: str = "adapter"):  # noqa: ANN201
    """(peft settings, LoRA tensors) of an adapter folder: `adapter_config.json` and
    `adapter_model.safetensors` (safetensors only)."""
    from peft import PeftConfig
    from safetensors.torch import load_file

    require_adapter(folder, role)
    weights = Path(folder) / "adapter_model.safetensors"
    if not weights.is_file():
        raise KinheritError(f"{_named(folder, role)} has no adapter_model.safetensors")
    try:
        return PeftConfig.from_pretrained(str(folder)), load_file(str(weights))
    except (OSError, ValueError, KeyError) as err:
        raise KinheritError(f"{_named(folder, role)}: cannot read the adapter ({_first_line(err)})") from None


def load_adapter_classifier(folder: str | Path, role: str, base: str | Path | None = None, trainable: bool = False):  # noqa: ANN201
    """A PEFT classifier: `base` (default: the adapter's own base) with the adapter in `folder`."""
    from peft import PeftModel

    require_adapter(folder, role)
    base = Path(base) if base is not None else adapter_base(folder)
    pad = load_model_tokenizer(base, role).pad_token_id
    model, _ = load_classifier(base, role, adapter_labels(folder), pad_token_id=pad)
    try:
        return PeftModel.from_pretrained(model, str(folder), is_trainable=trainable)
    except (ValueError, KeyError, RuntimeError) as err:
        raise KinheritError(f"{role}: adapter {folder} does not fit the base {base}: {_first_line(err)}") from None


def load_any_classifier(folder: str | Path, role: str):  # noqa: ANN201
    """A fine-tuned classifier folder, or an adapter folder on its base (used for teachers)."""
    if is_adapter(folder):
        return load_adapter_classifier(folder, role)
    config = read_config(folder, role)
    if not is_classifier(config):
        raise KinheritError(
            f"{_named(folder, role)} is not a fine-tuned sequence classifier (architectures {config.architectures})"
        )
    return load_classifier(folder, role)[0]


# --- tokenizers -----------------------------------------------------------------------------------


GENERIC_TOKENIZER_CLASSES = ("TokenizersBackend", "PreTrainedTokenizerFast")


def open_tokenizer(folder: str | Path) -> PreTrainedTokenizerBase:
    """The tokenizer saved in `folder`, exactly as saved (OSError/ValueError when there is none).

    `AutoTokenizer` maps some model types (qwen2, phi3, ...) to their own tokenizer class even when
    `tokenizer_config.json` names the generic fast class; that class rebuilds the normaliser and
    pre-tokenizer from vocab and merges, so a kinherit-trained BPE saved next to such a model would
    tokenize differently. A folder whose config names the generic class is therefore read through that
    class from its `tokenizer.json`; every other folder through `AutoTokenizer`."""
    config = Path(folder) / "tokenizer_config.json"
    if (Path(folder) / "tokenizer.json").is_file() and config.is_file():
        if json.loads(config.read_text()).get("tokenizer_class") in GENERIC_TOKENIZER_CLASSES:
            return PreTrainedTokenizerFast.from_pretrained(str(folder))
    return AutoTokenizer.from_pretrained(str(folder))


def has_tokenizer(folder: str | Path) -> bool:
    return any((Path(folder) / name).is_file() for name in TOKENIZER_FILES[:9])


def load_model_tokenizer(folder: str | Path, role: str = "") -> PreTrainedTokenizerBase:
    """The folder's tokenizer with a padding token (eos when it has none)."""
    try:
        tokenizer = open_tokenizer(folder)
    except (OSError, ValueError) as err:
        raise KinheritError(f"{_named(folder, role)} has no usable tokenizer ({_first_line(err)})") from None
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise KinheritError(f"the tokenizer of {_named(folder, role)} has neither a pad nor an eos token")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def find_tokenizer(folder: str | Path) -> PreTrainedTokenizerBase | None:
    """The folder's tokenizer if it has a usable one, else None (for optional uses such as sample text)."""
    if not has_tokenizer(folder):
        return None
    try:
        return open_tokenizer(folder)
    except (ValueError, OSError):
        return None


def vocabulary_signature(tokenizer: Any) -> str:
    """The part of a fast tokenizer that decides token ids: its model (vocab, merges) and added
    tokens. Two tokenizers with equal signatures map every text to the same ids."""
    if not getattr(tokenizer, "is_fast", False):
        raise KinheritError(
            f"tokenizer {tokenizer.name_or_path} is not a fast (tokenizer.json) tokenizer; its vocabulary cannot be "
            "compared"
        )
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    added = sorted((t["id"], t["content"]) for t in spec.get("added_tokens", []))
    return json.dumps([spec["model"], added], sort_keys=True)
