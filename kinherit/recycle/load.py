"""Load the model folders recycling works with: base LMs, sequence classifiers and PEFT LoRA adapters.

Weights come only through `from_pretrained` (safetensors, never remote code); every load reports
missing/unexpected keys, and only the task head may be missing (it is then freshly initialised).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, PretrainedConfig, PreTrainedModel

from kinherit.errors import KinheritError

ADAPTER_CONFIG = "adapter_config.json"
LABELS_FILE = "labels.json"  # written next to an adapter: the label names its head was trained on


def is_adapter(folder: str | Path) -> bool:
    return (Path(folder) / ADAPTER_CONFIG).is_file()


def read_config(folder: str | Path, role: str) -> PretrainedConfig:
    """The folder's transformers config; `role` (e.g. OLD_BASE) names it in errors."""
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        hint = " (it is a PEFT adapter folder: pass --adapter)" if is_adapter(folder) else ""
        raise KinheritError(f"{role} {folder} is not a Hugging Face model folder (no config.json){hint}")
    try:
        return AutoConfig.from_pretrained(str(folder), trust_remote_code=False)
    except (OSError, ValueError, KeyError) as err:
        raise KinheritError(f"{role} {folder}: cannot read config.json ({str(err).splitlines()[0]})") from None


def is_classifier(config: PretrainedConfig) -> bool:
    return any(a.endswith("ForSequenceClassification") for a in config.architectures or [])


def labels_of(config: PretrainedConfig) -> list[str] | None:
    """The label names a classifier config carries, or None for transformers' default `LABEL_i`."""
    names = [config.id2label[i] for i in range(config.num_labels)]
    return None if names == [f"LABEL_{i}" for i in range(config.num_labels)] else names


def head_keys(model: PreTrainedModel) -> set[str]:
    """The task-specific tensors of a sequence classifier: everything outside the base model
    (score / classifier) plus BERT's pooler, which masked-LM checkpoints do not have."""
    prefix = model.base_model_prefix + "."
    return {k for k in model.state_dict() if not k.startswith(prefix) or ".pooler." in f".{k}"}


def head_modules(model: PreTrainedModel) -> list[str]:
    """Names of the head modules (for peft `modules_to_save`): `score`/`classifier`, and `pooler`."""
    prefix = model.base_model_prefix + "."
    return sorted({"pooler" if k.startswith(prefix) else k.split(".")[0] for k in head_keys(model)})


def load_tokenizer_of(folder: str | Path, role: str):  # noqa: ANN201
    """The folder's tokenizer with a padding token (eos when it has none)."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
    except (OSError, ValueError) as err:
        raise KinheritError(f"{role} {folder} has no usable tokenizer ({str(err).splitlines()[0]})") from None
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise KinheritError(f"the tokenizer of {role} {folder} has neither a pad nor an eos token")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_classifier(
    folder: str | Path,
    role: str,
    labels: list[str] | None = None,
    pad_token_id: int | None = None,
) -> tuple[PreTrainedModel, set[str]]:
    """`AutoModelForSequenceClassification` from a base or classifier folder; returns the model and
    the head keys that were freshly initialised. `labels` sets (or must match) the label names."""
    config = read_config(folder, role)
    existing = labels_of(config) if is_classifier(config) else None
    if labels is not None and existing is not None and existing != labels:
        raise KinheritError(f"{role} {folder} was tuned for labels {existing}, but the task has {labels}")
    names = labels or existing
    if names is None:
        raise KinheritError(f"{role} {folder} is not a sequence classifier and no task labels were given")
    config.num_labels = len(names)
    config.id2label = dict(enumerate(names))
    config.label2id = {name: i for i, name in enumerate(names)}
    if pad_token_id is not None:
        config.pad_token_id = pad_token_id
    config.use_cache = False
    try:
        model, info = AutoModelForSequenceClassification.from_pretrained(
            str(folder), config=config, dtype=torch.float32, output_loading_info=True, trust_remote_code=False
        )
    except (OSError, ValueError) as err:
        raise KinheritError(f"cannot load {role} {folder} as a classifier: {str(err).splitlines()[0]}") from None
    fresh = set(info["missing_keys"])
    heads = head_keys(model)
    if fresh - heads or info["mismatched_keys"]:
        bad = sorted(fresh - heads) or [str(m) for m in info["mismatched_keys"]]
        raise KinheritError(f"{role} {folder}: weights do not match the model, e.g. {bad[0]}")
    return model, fresh


def adapter_base(folder: str | Path) -> Path:
    """The base folder a PEFT adapter was trained on (its `base_model_name_or_path`)."""
    config = json.loads((Path(folder) / ADAPTER_CONFIG).read_text())
    base = config.get("base_model_name_or_path")
    if not base or not Path(base).is_dir():
        raise KinheritError(f"adapter {folder}: its base model {base!r} is not a local folder")
    return Path(base)


def adapter_labels(folder: str | Path) -> list[str]:
    path = Path(folder) / LABELS_FILE
    if not path.is_file():
        raise KinheritError(f"adapter {folder} has no {LABELS_FILE} (write it with kinherit finetune)")
    return list(json.loads(path.read_text())["labels"])


def load_adapter_classifier(folder: str | Path, role: str, base: str | Path | None = None, trainable: bool = False):  # noqa: ANN201
    """A PEFT classifier: `base` (default: the adapter's own base) with the adapter in `folder`."""
    from peft import PeftModel

    base = Path(base) if base is not None else adapter_base(folder)
    model, _ = load_classifier(base, role, adapter_labels(folder), pad_token_id=load_tokenizer_of(base, role).pad_token_id)
    try:
        return PeftModel.from_pretrained(model, str(folder), is_trainable=trainable)
    except (ValueError, KeyError, RuntimeError) as err:
        raise KinheritError(f"{role}: adapter {folder} does not fit the base {base}: {str(err).splitlines()[0]}") from None


def load_any_classifier(folder: str | Path, role: str):  # noqa: ANN201
    """A fine-tuned classifier folder, or an adapter folder on its base (used for teachers)."""
    if is_adapter(folder):
        return load_adapter_classifier(folder, role)
    if not is_classifier(read_config(folder, role)):
        raise KinheritError(f"{role} {folder} is not a fine-tuned sequence classifier (architectures {read_config(folder, role).architectures})")
    return load_classifier(folder, role)[0]
