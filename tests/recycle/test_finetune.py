import csv
import json
import math

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from kinherit.config import load_yaml_config as load
from kinherit.config import validate_as as validate
from kinherit.data.classification import file_task, stdlib_packages_task
from kinherit.errors import KinheritError
from kinherit.metrics.log import read_metrics
from kinherit.recycle.config import ExperimentConfig, FinetuneConfig
from kinherit.recycle.distillation import distill_loss
from kinherit.recycle.finetune import finetune
from tests.conftest import CrashAt

from .conftest import LABELS, make_base, sample_inputs

SMALL = {"task": "stdlib-packages", "packages": LABELS, "train_per_class": 8, "val_per_class": 4, "max_length": 16}
FAST = {"max_steps": 4, "eval_steps": 2, "logging_steps": 1, "per_device_train_batch_size": 8}


def _softmax(xs):
    exps = [math.exp(x) for x in xs]
    return [e / sum(exps) for e in exps]


def test_distillation_loss_matches_a_hand_computed_value():
    student, teacher, label, alpha, tau = [1.0, 0.0, -1.0], [0.0, 1.0, 0.5], 0, 0.7, 2.0
    ce = -math.log(_softmax(student)[label])
    p, q = _softmax([s / tau for s in student]), _softmax([t / tau for t in teacher])
    kd = tau**2 * sum(qi * math.log(qi / pi) for qi, pi in zip(q, p))
    loss, terms = distill_loss(torch.tensor([student]), torch.tensor([label]), torch.tensor([teacher]), alpha, tau)
    assert math.isclose(terms["ce"].item(), ce, rel_tol=1e-6) and math.isclose(terms["kd"].item(), kd, rel_tol=1e-6)
    assert math.isclose(loss.item(), (1 - alpha) * ce + alpha * kd, rel_tol=1e-6)


def test_builtin_task_is_balanced_and_deterministic():
    first = stdlib_packages_task(["json", "email", "xml"], 20, 5, 6, seed=0)
    again = stdlib_packages_task(["json", "email", "xml"], 20, 5, 6, seed=0)
    other = stdlib_packages_task(["json", "email", "xml"], 20, 5, 6, seed=1)
    assert first == again and first.train.texts != other.train.texts
    assert first.label_names == ["json", "email", "xml"]
    assert [first.train.labels.count(i) for i in range(3)] == [20, 20, 20]
    assert [first.validation.labels.count(i) for i in range(3)] == [5, 5, 5]
    assert not set(first.train.texts) & set(first.validation.texts)
    assert all(len(t.splitlines()) == 6 for t in first.train.texts)
    with pytest.raises(KinheritError, match="'nosuchpkg' is not a package"):
        stdlib_packages_task(["json", "nosuchpkg"], 2, 2, 6, seed=0)
    with pytest.raises(KinheritError, match="fewer than val_per_class=5 / train_per_class=100000"):
        stdlib_packages_task(["json", "email"], 100000, 5, 6, seed=0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_default_task_works_as_written(seed):
    """`data: {task: stdlib-packages}` and nothing else: 200 training and 50 validation snippets per default package
    (with `json` among them, the defaults asked for more snippets than it has)."""
    from kinherit.recycle.config import TaskDataConfig
    from kinherit.recycle.finetune import load_task

    data = TaskDataConfig(task="stdlib-packages", seed=seed)
    task = load_task(data)
    assert task.label_names == data.packages == ["asyncio", "email", "unittest", "xml"]
    assert [task.train.labels.count(i) for i in range(4)] == [data.train_per_class] * 4 == [200] * 4
    assert [task.validation.labels.count(i) for i in range(4)] == [data.val_per_class] * 4 == [50] * 4


def test_builtin_task_splits_by_file():
    from kinherit.data.classification import package_files, snippets_of

    task = stdlib_packages_task(["json", "email"], 20, 5, 6, seed=0)
    source = {
        snippet: path
        for files in package_files(["json", "email"]).values()
        for path in files
        for snippet in snippets_of([path], 6)
    }
    train_files = {source[t] for t in task.train.texts}
    val_files = {source[t] for t in task.validation.texts}
    assert train_files and val_files and not train_files & val_files


def test_task_from_csv_jsonl_and_saved_dataset(tmp_path):
    from datasets import Dataset, DatasetDict

    rows = [{"text": f"sample {i}", "label": "pos" if i % 2 else "neg"} for i in range(20)]
    with (tmp_path / "d.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text", "label"])
        writer.writeheader()
        writer.writerows(rows)
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    DatasetDict({"train": Dataset.from_list(rows), "validation": Dataset.from_list(rows[:4])}).save_to_disk(
        str(tmp_path / "hf")
    )
    from_csv = file_task(str(tmp_path / "d.csv"), None, "text", "label", 0.2, seed=0)
    from_jsonl = file_task(str(tmp_path / "d.jsonl"), None, "text", "label", 0.2, seed=0)
    from_hf = file_task(str(tmp_path / "hf"), str(tmp_path / "hf"), "text", "label", 0.2, seed=0)
    assert from_csv == from_jsonl and len(from_csv.train) == 16 and len(from_csv.validation) == 4
    assert from_hf.label_names == ["neg", "pos"] and len(from_hf.train) == 20 and len(from_hf.validation) == 4
    with pytest.raises(KinheritError, match="has no 'sentence' field"):
        file_task(str(tmp_path / "d.jsonl"), None, "sentence", "label", 0.2, seed=0)


def test_config_errors_name_the_key(tmp_path):
    base = {"model": {"base": "x"}, "data": SMALL}
    with pytest.raises(KinheritError, match="config key data.packges: unknown key"):
        validate(FinetuneConfig, {**base, "data": {**SMALL, "packges": ["json"]}})
    with pytest.raises(KinheritError, match="did you mean 'max_steps'"):
        validate(FinetuneConfig, {**base, "train": {"max_stesp": 3}})
    with pytest.raises(KinheritError, match="config key teacher.alpha"):
        load(FinetuneConfig, None, {**base, "teacher": {"path": "t", "alpha": 1.5}})
    with pytest.raises(KinheritError, match="exactly one of data.task"):
        validate(FinetuneConfig, {**base, "data": {"task": "stdlib-packages", "train": "x.csv"}})
    experiment = {"old_base": "a", "new_base": "b", "finetune": {"data": {**SMALL, "snippet_line": 3}}}
    with pytest.raises(KinheritError, match="config key finetune.data.snippet_line: unknown key"):
        validate(ExperimentConfig, experiment)  # caught before any variant runs


def test_lora_adapter_trained_on_a_loads_on_b_and_keeps_training(tmp_path, tokenizer_dir, capsys):
    from kinherit.cli import main
    from kinherit.hf_folder import load_adapter_classifier, load_classifier

    a = make_base(tmp_path / "A", tokenizer_dir, seed=0)
    b = make_base(tmp_path / "B", tokenizer_dir, seed=5)
    lora = finetune(
        validate(
            FinetuneConfig,
            {
                "out": str(tmp_path / "lora"),
                "model": {"base": str(a), "lora": {"r": 4}},
                "data": SMALL,
                "train": {**FAST, "learning_rate": 1e-2},
            },
        )
    )
    assert (
        lora.model_dir.name == "adapter"
        and json.loads((lora.model_dir / "labels.json").read_text())["labels"] == LABELS
    )

    code = main(
        [
            "recycle",
            "--old-base",
            str(a),
            "--old-tuned",
            str(lora.model_dir),
            "--new-base",
            str(b),
            "--out",
            str(tmp_path / "on-b"),
            "--adapter",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0 and "transferred 8 tensors" in printed and "score.weight" in printed
    inputs = sample_inputs(tokenizer_dir)
    with_adapter = load_adapter_classifier(tmp_path / "on-b", "B").eval()
    assert with_adapter.peft_config["default"].base_model_name_or_path == str(b.resolve())
    plain, _ = load_classifier(b, "B", LABELS, with_adapter.config.pad_token_id)
    plain.load_state_dict(
        {**plain.state_dict(), "score.weight": with_adapter.base_model.model.score.modules_to_save["default"].weight}
    )
    with torch.no_grad():
        changed = (with_adapter(**inputs).logits - plain.eval()(**inputs).logits).abs().max()
    assert changed > 1e-3  # the LoRA update (not only the head) changes B's outputs

    continued = finetune(
        validate(
            FinetuneConfig,
            {
                "out": str(tmp_path / "continued"),
                "model": {"base": str(b), "adapter": str(tmp_path / "on-b")},
                "data": SMALL,
                "teacher": {"path": str(lora.model_dir)},
                "train": FAST,
            },
        )
    )
    events = read_metrics(continued.out / "metrics.jsonl")
    assert events[0]["step"] == 0 and any("kd" in e for e in events)
    assert (continued.model_dir / "adapter_model.safetensors").is_file()


def test_full_finetune_writes_model_metrics_and_config(tmp_path, tokenizer_dir):
    a = make_base(tmp_path / "A", tokenizer_dir, family="gpt2")
    result = finetune(
        validate(FinetuneConfig, {"out": str(tmp_path / "ft"), "model": {"base": str(a)}, "data": SMALL, "train": FAST})
    )
    model = AutoModelForSequenceClassification.from_pretrained(str(result.model_dir))
    assert model.config.pad_token_id is not None and list(model.config.id2label.values()) == LABELS
    assert sorted(result.accuracy) == [0, 2, 4]
    events = read_metrics(tmp_path / "ft" / "metrics.jsonl")
    assert [e["step"] for e in events if "loss" in e] == [1, 2, 3, 4]
    assert "max_steps: 4" in (tmp_path / "ft" / "config.resolved.yaml").read_text()
    with pytest.raises(KinheritError, match="already holds a run"):
        finetune(
            validate(
                FinetuneConfig, {"out": str(tmp_path / "ft"), "model": {"base": str(a)}, "data": SMALL, "train": FAST}
            )
        )


@pytest.mark.parametrize("with_teacher", [False, True])
def test_gradient_accumulation_gives_the_step_mean_loss_and_gradient(tmp_path, tokenizer_dir, with_teacher):
    """8 examples as one batch or as 4 micro-batches of 2: the same examples, so the same logged loss and the same
    gradient norm (transformers 5 once treated each classification micro-batch mean as pre-scaled: both were 4×)."""
    from .conftest import make_tuned

    a = make_base(tmp_path / "A", tokenizer_dir)
    teacher = {"teacher": {"path": str(make_tuned(a, tmp_path / "A-tuned"))}} if with_teacher else {}
    frozen = {"learning_rate": 0.0, "max_steps": 1, "eval_steps": 1, "logging_steps": 1}
    logged = {}
    for name, batch in (
        ("ga1", {"per_device_train_batch_size": 8}),
        ("ga4", {"per_device_train_batch_size": 2, "gradient_accumulation_steps": 4}),
    ):
        finetune(
            validate(
                FinetuneConfig,
                {
                    "out": str(tmp_path / name),
                    "model": {"base": str(a)},
                    "data": SMALL,
                    "train": {**frozen, **batch},
                    **teacher,
                },
            )
        )
        logged[name] = next(e for e in read_metrics(tmp_path / name / "metrics.jsonl") if "loss" in e)
    one, four = logged["ga1"], logged["ga4"]
    assert one["tokens"] == four["tokens"] == 8 * 16
    for key in ("loss", "ce", "grad_norm") + (("kd",) if with_teacher else ()):
        assert four[key] == pytest.approx(one[key], rel=1e-4), (key, one[key], four[key])


def test_resume_after_a_crash_matches_an_uninterrupted_run(tmp_path, tokenizer_dir):
    from kinherit.cli import main

    from .conftest import make_tuned

    a = make_base(tmp_path / "A", tokenizer_dir)
    teacher = make_tuned(a, tmp_path / "A-tuned")

    def config(name):
        return validate(
            FinetuneConfig,
            {
                "out": str(tmp_path / name),
                "model": {"base": str(a), "lora": {"r": 4}},
                "data": SMALL,
                "teacher": {"path": str(teacher)},
                "train": {**FAST, "max_steps": 6, "eval_steps": 3, "save_steps": 2},
            },
        )

    straight = finetune(config("straight"))
    with pytest.raises(RuntimeError, match="simulated crash"):
        finetune(config("crashed"), callbacks=[CrashAt(3)])
    assert (
        main(
            [
                "finetune",
                "--out",
                str(tmp_path / "crashed"),
                "--model.base",
                str(a),
                "--model.lora.r",
                "4",
                "--teacher.path",
                str(teacher),
                "--data.task",
                "stdlib-packages",
                "--data.packages",
                json.dumps(LABELS),
                "--data.train_per_class",
                "8",
                "--data.val_per_class",
                "4",
                "--data.max_length",
                "16",
                "--train.max_steps",
                "6",
                "--train.eval_steps",
                "3",
                "--train.save_steps",
                "2",
                "--train.logging_steps",
                "1",
                "--train.per_device_train_batch_size",
                "8",
                "--resume",
            ]
        )
        == 0
    )
    expected, resumed = (
        read_metrics(tmp_path / "straight" / "metrics.jsonl"),
        read_metrics(tmp_path / "crashed" / "metrics.jsonl"),
    )
    assert [e["step"] for e in resumed] == [e["step"] for e in expected] == [0, 1, 2, 3, 3, 4, 5, 6, 6]
    for old, new in zip(expected, resumed):
        for key in ("loss", "ce", "kd", "val_loss", "val_accuracy", "flops", "teacher_flops"):
            assert abs(old.get(key, 0.0) - new.get(key, 0.0)) <= 1e-6, (old["step"], key, old.get(key), new.get(key))
    assert straight.final_step == 6 and straight.flops[6] == resumed[-1]["flops"]


def test_a_plain_transformers_classifier_teaches_but_wrong_label_count_is_refused(tmp_path, tokenizer_dir):
    """A teacher saved by plain transformers keeps the default `LABEL_i` names: distillation uses it by position."""
    a = make_base(tmp_path / "A", tokenizer_dir)
    plain = AutoModelForSequenceClassification.from_pretrained(str(a), num_labels=len(LABELS))
    plain.config.pad_token_id = plain.config.eos_token_id
    plain.save_pretrained(str(tmp_path / "plain"))
    config = {
        "out": str(tmp_path / "ft"),
        "model": {"base": str(a)},
        "data": SMALL,
        "train": FAST,
        "teacher": {"path": str(tmp_path / "plain")},
    }
    result = finetune(validate(FinetuneConfig, config))
    assert any(e.get("kd", 0) > 0 for e in read_metrics(result.out / "metrics.jsonl"))

    AutoModelForSequenceClassification.from_pretrained(str(a), num_labels=2).save_pretrained(str(tmp_path / "two"))
    with pytest.raises(KinheritError, match=r"teacher.path .*two has 2 labels"):
        finetune(
            validate(
                FinetuneConfig, {**config, "out": str(tmp_path / "ft2"), "teacher": {"path": str(tmp_path / "two")}}
            )
        )


def test_resume_with_another_learning_rate_is_refused_in_one_line(tmp_path, tokenizer_dir):
    a = make_base(tmp_path / "A", tokenizer_dir)
    raw = {
        "out": str(tmp_path / "run"),
        "model": {"base": str(a)},
        "data": SMALL,
        "train": {**FAST, "max_steps": 2, "eval_steps": 2, "save_steps": 2},
    }
    finetune(validate(FinetuneConfig, raw))
    changed = {**raw, "train": {**raw["train"], "learning_rate": 0.5}}
    with pytest.raises(KinheritError, match=r"^--resume: this config differs .* in train\.learning_rate \("):
        finetune(validate(FinetuneConfig, changed), resume=True)
