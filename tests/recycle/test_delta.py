import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, BertForSequenceClassification

from kinherit.cli import main
from kinherit.errors import KinheritError
from kinherit.hf_folder import load_classifier
from kinherit.recycle.delta import recycle_full

from .conftest import LABELS, make_base, make_tuned


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_delta_arithmetic_is_exact_tensor_by_tensor(tmp_path, tokenizer_dir, scale):
    a = make_base(tmp_path / "A", tokenizer_dir, seed=0)
    tuned = make_tuned(a, tmp_path / "A_tuned")
    b = make_base(tmp_path / "B", tokenizer_dir, seed=7)  # stands in for A continually pre-trained
    report = recycle_full(a, tuned, b, tmp_path / "init", scale=scale)

    base = AutoModelForCausalLM.from_pretrained(str(a)).state_dict()
    new = AutoModelForCausalLM.from_pretrained(str(b)).state_dict()
    tuned_state = load_file(str(tuned / "model.safetensors"))
    out = load_file(str(tmp_path / "init" / "model.safetensors"))
    backbone = {k for k in tuned_state if k.startswith("model.")}
    assert set(out) == backbone | {"score.weight"}
    for key in backbone:
        torch.testing.assert_close(out[key], new[key] + scale * (tuned_state[key] - base[key]), rtol=0, atol=0)
    torch.testing.assert_close(
        out["score.weight"], tuned_state["score.weight"], rtol=0, atol=0
    )  # head from A_tuned, unscaled
    assert sorted(report.transferred) == sorted(backbone) and report.head == ["score.weight"] and not report.mapped
    assert list(report.skipped) == ["lm_head.weight"] and not report.kept
    config = json.loads((tmp_path / "init" / "config.json").read_text())
    assert config["architectures"] == ["LlamaForSequenceClassification"] and list(config["id2label"].values()) == LABELS
    assert json.loads((tmp_path / "init" / "recycle.json").read_text())["scale"] == scale
    AutoModelForSequenceClassification.from_pretrained(str(tmp_path / "init"))  # a normal HF folder


def test_bert_pooler_counts_as_head(tmp_path, tokenizer_dir):
    a = make_base(tmp_path / "A", tokenizer_dir, family="bert")
    tuned = make_tuned(a, tmp_path / "A_tuned")
    b = make_base(tmp_path / "B", tokenizer_dir, family="bert", seed=3)
    report = recycle_full(a, tuned, b, tmp_path / "init")
    assert report.head == ["bert.pooler.dense.bias", "bert.pooler.dense.weight", "classifier.bias", "classifier.weight"]
    assert all(k.startswith("cls.predictions") for k in report.skipped)
    out, tuned_state = (
        load_file(str(tmp_path / "init" / "model.safetensors")),
        load_file(str(tuned / "model.safetensors")),
    )
    for key in report.head:
        torch.testing.assert_close(out[key], tuned_state[key], rtol=0, atol=0)


def _plain_bert_classifier(base, out, num_labels: int) -> None:
    """What most fine-tuned checkpoints look like: saved by plain transformers, labels `LABEL_i`."""
    model = BertForSequenceClassification.from_pretrained(str(base), num_labels=num_labels)
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn(param.shape, generator=gen))
    model.save_pretrained(str(out))


def test_plain_transformers_classifier_with_default_labels(tmp_path, tokenizer_dir, capsys):
    a = make_base(tmp_path / "A", tokenizer_dir, family="bert")
    _plain_bert_classifier(a, tmp_path / "A_tuned", num_labels=3)
    assert json.loads((tmp_path / "A_tuned" / "config.json").read_text())["id2label"] == {
        "0": "LABEL_0",
        "1": "LABEL_1",
        "2": "LABEL_2",
    }
    b = make_base(tmp_path / "B", tokenizer_dir, family="bert", seed=3)
    argv = ["recycle", "--old-base", str(a), "--old-tuned", str(tmp_path / "A_tuned"), "--new-base", str(b)]
    assert main([*argv, "--out", str(tmp_path / "init")]) == 0
    out, tuned = (
        load_file(str(tmp_path / "init" / "model.safetensors")),
        load_file(str(tmp_path / "A_tuned" / "model.safetensors")),
    )
    base, new = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    key = "bert.encoder.layer.1.attention.self.query.weight"
    torch.testing.assert_close(out[key], new[key] + (tuned[key] - base[key]), rtol=0, atol=0)
    torch.testing.assert_close(out["classifier.weight"], tuned["classifier.weight"], rtol=0, atol=0)
    assert out["classifier.weight"].shape == (3, 32)

    # the number of labels is still checked: a 3-label classifier cannot serve a 4-class task
    with pytest.raises(
        KinheritError, match=r"A_TUNED .* has 3 labels \['LABEL_0', 'LABEL_1', 'LABEL_2'\], but the task has 4"
    ):
        load_classifier(tmp_path / "A_tuned", "A_TUNED", ["a", "b", "c", "d"])
    named, _ = load_classifier(tmp_path / "A_tuned", "A_TUNED", ["a", "b", "c"])  # unnamed labels take the task's names
    assert named.config.id2label == {0: "a", 1: "b", 2: "c"}
    named.save_pretrained(str(tmp_path / "named"))  # named labels must match by name
    with pytest.raises(
        KinheritError, match=r"was tuned for labels \['a', 'b', 'c'\], but the task has \['x', 'b', 'c'\]"
    ):
        load_classifier(tmp_path / "named", "model.base", ["x", "b", "c"])
