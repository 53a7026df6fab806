"""`build_model`: a fresh family model, or `model.from` checked against the data's tokenizer."""

import pytest
from transformers import AutoModelForCausalLM

from kinherit.arch.build import build_model
from kinherit.config import ModelConfig
from kinherit.data.sources import stdlib_files
from kinherit.data.tokenizer import train_bpe
from kinherit.errors import KinheritError
from kinherit.grow import grow_folder


def _bpe(path, package: str):
    return train_bpe(iter(p.read_text() for p in stdlib_files() if p.parent.name == package), 300, path)


def test_model_from_must_use_its_own_tokenizer(tmp_path):
    ours, retrained = _bpe(tmp_path / "tok-json", "json"), _bpe(tmp_path / "tok-email", "email")
    assert len(ours) == len(retrained) == 300  # same size, different merges
    small = build_model(ModelConfig(family="llama", hidden_size=32, num_heads=4, intermediate_size=64), ours, 32)
    assert small.config.vocab_size == 300
    small.save_pretrained(str(tmp_path / "small"))
    ours.save_pretrained(str(tmp_path / "small"))
    grow_folder(tmp_path / "small", tmp_path / "grown", hidden_size=64, num_layers=3)

    grown = build_model(ModelConfig(**{"from": str(tmp_path / "grown")}), ours, 32)  # its own tokenizer: fine
    assert (grown.config.hidden_size, grown.config.num_hidden_layers) == (64, 3)
    with pytest.raises(
        KinheritError,
        match=r"^model.from .*grown was trained with another tokenizer \(300 tokens\) than the data's \(300 tokens",
    ):
        build_model(ModelConfig(**{"from": str(tmp_path / "grown")}), retrained, 32)

    AutoModelForCausalLM.from_pretrained(str(tmp_path / "small")).save_pretrained(
        str(tmp_path / "bare")
    )  # no tokenizer files
    with pytest.raises(KinheritError, match="has no tokenizer"):
        build_model(ModelConfig(**{"from": str(tmp_path / "bare")}), ours, 32)
