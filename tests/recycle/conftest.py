"""Tiny model folders for the recycle tests: random bases, perturbed fine-tunings, LoRA adapters."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

from kinherit.arch import FAMILIES
from kinherit.config import ModelConfig
from kinherit.data.sources import stdlib_files
from kinherit.data.tokenizer import train_bpe
from kinherit.hf_folder import LABELS_FILE, head_modules, load_classifier
from kinherit.io import write_json

LABELS = ["email", "json", "xml"]


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("recycle-tok") / "tokenizer"
    json_files = [p for p in stdlib_files() if p.parent.name == "json"]
    train_bpe(iter(p.read_text() for p in json_files), 300, path)
    return path


def make_base(out: Path, tokenizer_dir: Path, family: str = "llama", seed: int = 0, **sizes) -> Path:
    """A random-initialised LM folder (with tokenizer) of `family`: hidden 32, 2 layers by default."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    cfg = ModelConfig(
        family=family, **{"hidden_size": 32, "num_layers": 2, "num_heads": 4, "intermediate_size": 64, **sizes}
    )
    hf = FAMILIES[family].build_config(cfg, len(tokenizer), 64)
    torch.manual_seed(seed)
    auto = AutoModelForMaskedLM if FAMILIES[family].task == "masked" else AutoModelForCausalLM
    model = auto.from_config(hf)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return out


def make_tuned(base: Path, out: Path, seed: int = 1, scale: float = 0.05) -> Path:
    """A "fine-tuned" classifier of `base`: every backbone tensor perturbed, a random head."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(base))
    model, _ = load_classifier(base, "base", LABELS, tokenizer.pad_token_id)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(scale * torch.randn(param.shape, generator=gen))
    model.save_pretrained(str(out))
    return out


def make_adapter(base: Path, out: Path, seed: int = 1) -> Path:
    """A LoRA adapter on `base` with non-zero factors (as if trained) and labels.json."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(base))
    model, _ = load_classifier(base.resolve(), "base", LABELS, tokenizer.pad_token_id)
    peft = get_peft_model(
        model, LoraConfig(task_type="SEQ_CLS", r=4, lora_alpha=8, modules_to_save=head_modules(model))
    )
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in peft.named_parameters():
            if "lora_" in name or "modules_to_save" in name:
                param.copy_(0.2 * torch.randn(param.shape, generator=gen))
    peft.save_pretrained(str(out))
    write_json(out / LABELS_FILE, {"labels": LABELS})
    return out


def sample_inputs(tokenizer_dir: Path) -> dict[str, torch.Tensor]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    texts = ["import json\nprint(json.dumps({'a': 1}))", "def decode(s):\n    return s", "x = [1, 2, 3]"]
    return tokenizer(texts, padding="max_length", max_length=16, truncation=True, return_tensors="pt")
