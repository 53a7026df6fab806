"""Fuzzing every command's arguments and config keys: each bad input exits 2 with one line that
names the problem, never a traceback, and before any training starts."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import yaml
from tokenizers import normalizers
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from kinherit.cli import main
from kinherit.data.sources import stdlib_files
from kinherit.data.tokenizer import train_bpe


def _package(name: str) -> list[Path]:
    return [p for p in stdlib_files() if p.parent.name == name]


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Tiny folders: a llama with its own BPE (trained on `json`), a llama with an explicit head_dim,
    configs for every config-driven command, and a malformed YAML file."""
    root = tmp_path_factory.mktemp("fuzz")
    corpus = root / "corpus"
    corpus.mkdir()
    for path in _package("json"):
        (corpus / path.name).write_text(path.read_text())
    tokenizer = train_bpe(iter(p.read_text() for p in _package("json")), 300, root / "tokenizer")
    model = root / "model"
    torch.manual_seed(0)
    LlamaForCausalLM(
        LlamaConfig(
            vocab_size=300,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=64,
        )
    ).save_pretrained(str(model))
    tokenizer.save_pretrained(str(model))
    LlamaForCausalLM(
        LlamaConfig(
            vocab_size=300,
            hidden_size=64,
            num_hidden_layers=1,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=32,
            intermediate_size=64,
        )
    ).save_pretrained(str(root / "head_dim"))
    run = {
        "out": str(root / "run"),
        "data": {
            "sources": [str(corpus)],
            "tokenizer": {"path": str(model)},
            "seq_len": 16,
            "val_fraction": 0.2,
            "cache_dir": str(root / "cache"),
        },
        "model": {"family": "llama", "hidden_size": 16, "num_layers": 1, "num_heads": 2, "intermediate_size": 32},
        "train": {"max_steps": 2, "per_device_train_batch_size": 2, "eval_steps": 1, "save_steps": 1},
    }
    (root / "run.yaml").write_text(yaml.safe_dump(run))
    finetune = {
        "out": str(root / "ft"),
        "model": {"base": str(model)},
        "data": {"task": "stdlib-packages", "train_per_class": 2, "val_per_class": 1, "max_length": 16},
        "train": {"max_steps": 1},
    }
    (root / "ft.yaml").write_text(yaml.safe_dump(finetune))
    experiment = {
        "out": str(root / "exp"),
        "old_base": str(model),
        "new_base": str(model),
        "finetune": {k: finetune[k] for k in ("data", "train")},
    }
    (root / "exp.yaml").write_text(yaml.safe_dump(experiment))
    (root / "bad.yaml").write_text("data: {seq_len: [1, 2}\n")
    email = root / "email"
    email.mkdir()
    for path in _package("email")[:6]:
        (email / path.name).write_text(path.read_text())
    # teachers with another tokenizer: another BPE, a lowercasing one, and one without tokenizer.json
    shutil.copytree(model, root / "other", ignore=shutil.ignore_patterns("*token*"))
    train_bpe(iter(p.read_text() for p in _package("email")[:6]), 300, root / "other-tok").save_pretrained(
        str(root / "other")
    )
    shutil.copytree(model, root / "lower")
    lower = AutoTokenizer.from_pretrained(str(model))
    lower.backend_tokenizer.normalizer = normalizers.Lowercase()
    lower.save_pretrained(str(root / "lower"))
    shutil.copytree(model, root / "notok", ignore=shutil.ignore_patterns("*token*"))
    return {
        "root": str(root),
        "model": str(model),
        "head_dim": str(root / "head_dim"),
        "run": str(root / "run.yaml"),
        "ft": str(root / "ft.yaml"),
        "exp": str(root / "exp.yaml"),
        "bad": str(root / "bad.yaml"),
        "email": str(email),
        "other": str(root / "other"),
        "lower": str(root / "lower"),
        "notok": str(root / "notok"),
    }


CASES = [
    # pretrain: YAML, config keys (wrong types, out of range, unknown), missing files
    (
        "pretrain --config {bad}",
        "config file {bad} is not valid YAML: expected ',' or ']', but got '}}' at line 1, column 22",
    ),
    ("pretrain --config {root}/missing.yaml", "config file {root}/missing.yaml not found"),
    ("pretrain --config {run} --data.seq_len=[1, 2", "override --data.seq_len is not valid YAML"),
    (
        "pretrain --config {run} --model.hidden_size=abc",
        "config key model.hidden_size: Input should be a valid integer",
    ),
    (
        "pretrain --config {run} --model.num_layers=0",
        "config key model.num_layers: Input should be greater than or equal to 1",
    ),
    ("pretrain --config {run} --model.dropout=1.5", "config key model.dropout: Input should be less than 1"),
    ("pretrain --config {run} --model.family=gpt5", "unknown family 'gpt5'"),
    ("pretrain --config {run} --model.hidden_size=31", "hidden_size 31 is not divisible by num_heads 2"),
    (
        "pretrain --config {run} --model.hidden_size=30",
        "transformers rejects this llama model: RoPE requires an even rotary dimension, but got `head_dim`=15",
    ),
    ("pretrain --config {run} --modle.family=gpt2", "config key modle: unknown key"),
    ("pretrain --config {run} --out", "argument --out: expected one argument (see kinherit pretrain --help)"),
    ("pretrain --config {run} --train.seed", "override --train.seed needs a value: --train.seed=VALUE"),
    (
        "pretrain --config {run} --unset=model.",
        "--unset=model.: name the keys to remove, e.g. --unset=model.hidden_size,model.num_layers",
    ),
    ("pretrain --config {run} --data.sources=notalist", "config key data.sources: Input should be a valid list"),
    ("pretrain --config {run} --data.val_fraction=0.7", "config key data.val_fraction: Input should be less than 0.5"),
    ("pretrain --config {run} --data.tokenizer.path={root}/nope", "{root}/nope not found"),
    ("pretrain --config {run} --train.learning_rate=abc", "config key train.learning_rate: must be float, got 'abc'"),
    (
        "pretrain --config {run} --train.per_device_train_batch_size=0",
        "config key train.per_device_train_batch_size: must be ≥ 1, got 0",
    ),
    ("pretrain --config {run} --train.eval_steps=-1", "config key train.eval_steps: must be > 0, got -1"),
    ("pretrain --config {run} --train.max_stesp=3", "did you mean 'max_steps'"),
    ("pretrain --config {run} --resume", "--resume: no complete checkpoint"),
    (
        "pretrain --config {run} --teacher.path={model} --teacher.alpha0=2",
        "config key teacher.alpha0: Input should be less than or equal to 1",
    ),
    (
        "pretrain --config {run} --teacher.path={model} --teacher.schedule=cosine",
        "unknown schedule 'cosine'; choose one of linear, heaviside, constant",
    ),
    ("pretrain --config {run} --teacher.path={model} --teacher.steps=5", "teacher.steps 5 exceeds train.max_steps 2"),
    (
        "pretrain --config {run} --teacher.path={model} --teacher.schedule=auto --train.eval_strategy='no'",
        "teacher.schedule: auto decides at evaluations",
    ),
    ("pretrain --config {run} --teacher.path={root}/nope", "teacher.path {root}/nope not found"),
    ("pretrain --config {run} --teacher.cache={root}/nope", "teacher.cache {root}/nope is not a teacher cache"),
    (
        "pretrain --config {run} --teacher.path={model} --teacher.top_k=100000",
        "teacher.top_k 100000 exceeds the vocabulary of 300 tokens",
    ),
    (
        "pretrain --config {run} --model.from={root}/nope --model.family=null",
        "model.from {root}/nope is not a Hugging Face model folder (no config.json)",
    ),
    # a continued model paired with a retrained BPE of the same size (300 tokens, other corpus)
    (
        "pretrain --config {run} --model.from={model} --model.family=null --data.sources=[{email}] "
        "--data.tokenizer.path=null --data.tokenizer.train_vocab_size=300",
        "model.from {model} was trained with another tokenizer (300 tokens) than the data's (300 tokens",
    ),
    # a teacher with another tokenizer
    (
        "pretrain --config {run} --teacher.path={other}",
        "or set teacher.cross_tokenizer (alm, shared_prefix, shared_vocab) to align the two tokenizations",
    ),
    (
        "pretrain --config {run} --teacher.path={lower} --teacher.cross_tokenizer=alm",
        "teacher tokenizer {lower} does not keep the text as is",
    ),
    (
        "pretrain --config {run} --teacher.path={notok} --teacher.cross_tokenizer=alm",
        "teacher {notok} has no tokenizer.json: teacher.cross_tokenizer aligns the two tokenizations by character "
        "offsets",
    ),
    (
        "pretrain --config {run} --teacher.path={other} --teacher.cross_tokenizer=uld",
        "config key teacher.cross_tokenizer: unknown cross-tokenizer method 'uld'; choose one of alm, "
        "shared_prefix, shared_vocab",
    ),
    (
        "pretrain --config {run} --teacher.path={other} --teacher.cross_tokenizer=alm --model.family=bert",
        "teacher.cross_tokenizer supports causal-LM students only",
    ),
    (
        "pretrain --config {run} --teacher.path={other} --teacher.cross_tokenizer=shared_vocab --teacher.top_k=100000",
        "teacher.top_k 100000 exceeds the",
    ),
    (
        "cache-teacher --teacher {lower} --config {run} --cross-tokenizer alm",
        "teacher tokenizer {lower} does not keep the text as is",
    ),
    (
        "cache-teacher --teacher {model} --config {run} --cross-tokenizer uld",
        "argument --cross-tokenizer: invalid choice: 'uld'",
    ),
    # cache-teacher
    ("cache-teacher --teacher {model} --config {run} --batch-size 0", "--batch-size must be ≥ 1, got 0"),
    ("cache-teacher --teacher {model} --config {run} --top-k 0", "--top-k must be ≥ 1, got 0"),
    ("cache-teacher --teacher {model} --config {run} --top-p 1.5", "--top-p must be in (0, 1), got 1.5"),
    (
        "cache-teacher --teacher {model} --config {run} --top-p 0.9 --cross-tokenizer alm",
        "--top-p serves same-tokenizer caches",
    ),
    (
        "cache-teacher --teacher {model} --config {run} --top-k 100000",
        "--top-k 100000 exceeds the vocabulary of 300 tokens",
    ),
    ("cache-teacher --teacher {root}/nope --config {run}", "--teacher {root}/nope not found"),
    ("cache-teacher --teacher {model} --config {run} --batch-size x", "argument --batch-size: invalid int value: 'x'"),
    ("cache-teacher --teacher {model}", "the following arguments are required: --config"),
    # grow
    ("grow {root}/nope {root}/g", "SRC_DIR {root}/nope is not a Hugging Face model folder (no config.json)"),
    ("grow {model} {root}/g --hidden-size abc", "argument --hidden-size: invalid int value: 'abc'"),
    ("grow {model} {root}/g --hidden-size 8", "--hidden-size 8 is smaller than the source's 16"),
    ("grow {model} {root}/g --num-layers 0", "--num-layers 0 is smaller than the source's 1"),
    ("grow {model} {root}/g --width foo", "argument --width: invalid choice: 'foo'"),
    ("grow {model} {root}/g --noise-db nan", "--noise-db must be a number"),
    ("grow {model} {model}", "OUT_DIR must differ from SRC_DIR"),
    ("grow {model} {root}/g --hidden-size 24", "--width clone needs integer multiples, but hidden 16->24"),
    (
        "grow {head_dim} {root}/g --num-heads 6 --width net2net",
        "--num-heads 6 does not divide --hidden-size 64 (transformers requires it even with the explicit head_dim 32)",
    ),
    ("grow {model} {root}/g --noise-db abc", "argument --noise-db: expected a number of dB or 'off', got 'abc'"),
    # divergence
    ("divergence {root}/nope", "MODEL_DIR {root}/nope not found"),
    ("divergence {model}", "no growth.json found for {model}: pass --growth PATH"),
    ("divergence {model} --growth {root}/nope.json", "{root}/nope.json does not exist (expected a growth.json)"),
    # finetune
    ("finetune --config {ft} --data.task=foo", "config key data.task: Input should be 'stdlib-packages'"),
    (
        "finetune --config {ft} --data.train_per_class=100000",
        "training snippets of 6 lines (split by file), fewer than val_per_class=1 / train_per_class=100000; lower "
        "them or data.snippet_lines, or pick larger packages in data.packages",
    ),
    ("finetune --config {ft} --model.lora.r=0", "config key model.lora.r: Input should be greater than or equal to 1"),
    ("finetune --config {ft} --teacher.path={model}", "teacher.path {model} is not a fine-tuned sequence classifier"),
    ("finetune --config {ft} --data.max_length=100000", "data.max_length 100000 exceeds the model's 64 positions"),
    (
        "finetune --config {ft} --data.task=null --data.train={root}/nope.csv",
        "task data {root}/nope.csv does not exist",
    ),
    ("finetune --config {ft} --model.adapter={root}/nope", "model.adapter {root}/nope not found"),
    (
        "finetune --config {ft} --model.base={root}/nope",
        "model.base {root}/nope is not a Hugging Face model folder (no config.json)",
    ),
    ("finetune", "config key model: Field required"),
    # recycle
    (
        "recycle --old-base {model} --old-tuned {model} --new-base {model} --out {root}/r",
        "A_TUNED {model} is not a fine-tuned sequence classifier",
    ),
    (
        "recycle --old-base {model} --old-tuned {model} --new-base {model} --out {root}/r --adapter",
        "A_TUNED {model} is not a PEFT adapter folder",
    ),
    (
        "recycle --old-base {model} --old-tuned {model} --new-base {model} --out {root}/r --scale abc",
        "argument --scale: invalid float value: 'abc'",
    ),
    (
        "recycle --old-base {model} --old-tuned {model} --new-base {model}",
        "the following arguments are required: --out",
    ),
    # recycle-experiment, report, demo
    ("recycle-experiment --config {exp} --variants=[init]", "variants must include 'scratch'"),
    (
        "recycle-experiment --config {exp} --finetune.train.learning_rate=abc",
        "config key finetune.train.learning_rate: must be float, got 'abc'",
    ),
    ("recycle-experiment --config {exp} --scale=abc", "config key scale: Input should be a valid number"),
    ("recycle-experiment", "config key old_base: Field required"),
    ("report {root}/nope --out {root}/rep", "{root}/nope has no evaluation events in metrics.jsonl"),
    ("report {root}/nope", "the following arguments are required: --out"),
    ("demo --bogus", "unrecognized arguments: --bogus"),
]


@pytest.mark.parametrize(
    ("argv", "message"), CASES, ids=[argv.split(" --config")[0][:60] + f"-{i}" for i, (argv, _) in enumerate(CASES)]
)
def test_bad_input_exits_2_with_one_line(paths, capsys, argv, message):
    argv = [part.format(**paths) for part in _split(argv)]
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse errors
        code = stop.code
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1] if err.strip() else ""  # progress bars may precede it on stderr
    assert code == 2, err[-2000:]
    assert "Traceback" not in err
    assert last.startswith(f"kinherit {argv[0]}: error: ") or last.startswith("kinherit: error: "), last
    assert message.format(**paths) in last, last
    assert not (Path(paths["root"]) / "run" / "checkpoints").exists()  # nothing trained


def _split(argv: str) -> list[str]:
    """Split on spaces, except inside a YAML flow value (`--data.seq_len=[1, 2`)."""
    parts: list[str] = []
    for token in argv.split(" "):
        if parts and parts[-1].count("[") > parts[-1].count("]") and not token.startswith("--"):
            parts[-1] += " " + token
        else:
            parts.append(token)
    return parts
