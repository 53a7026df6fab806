"""Walk the family registry: every registered family must support every capability, so a new family
cannot be half-supported. For each one: build from `model:` sizes, pre-train 2 steps and grow the saved
folder through the CLI, knowledge inheritance from the small model into the grown one (whose copies the
divergence diagnostic then reads), exact clone growth (+ identity depth where the family claims it; the deviation
is reported otherwise), a classification head that maps through growth, and FLOPs against a hand count.

Adding a family means adding its hand count to `HAND_MATMUL_PARAMS` (and, when its tiny models need config fields
to exercise its quirks, its record's `tiny_fields`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml
from tiny_models import randomize, registry_config
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer
from transformers.models.auto.modeling_auto import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES

from kinherit.arch import FAMILIES, read_shape
from kinherit.arch.shape import Shape
from kinherit.arch.spec import DEFAULT_EXPERTS_PER_TOKEN, DEFAULT_NUM_EXPERTS
from kinherit.cli import main
from kinherit.errors import KinheritError
from kinherit.grow import grow_folder
from kinherit.grow.depth import DEPTH_OPERATORS
from kinherit.hf_folder import load_classifier, open_tokenizer, task_of, vocabulary_signature
from kinherit.metrics.flops import flops_per_token
from kinherit.recycle.delta import recycle_full

VOCAB = 300
SEQ = 32


def _llama_like(s: Shape, v: int) -> int:
    q, kv = s.heads * s.head_dim, s.kv_heads * s.head_dim
    return s.layers * (s.hidden * (q + 2 * kv) + q * s.hidden + 3 * s.hidden * s.ffn) + v * s.hidden


def _moe(s: Shape, v: int, shared: int = 0) -> int:
    """Active weights: attention, the router (E·d), k of the E gated experts (3·d·ffn each), a shared gated expert
    of width `shared` and its 1-unit gate, the head; E, k are the defaults a `model:` section without them builds."""
    q, kv = s.heads * s.head_dim, s.kv_heads * s.head_dim
    experts = DEFAULT_NUM_EXPERTS * s.hidden + DEFAULT_EXPERTS_PER_TOKEN * 3 * s.hidden * s.ffn
    shared_expert = 3 * s.hidden * shared + s.hidden if shared else 0
    return s.layers * (s.hidden * (q + 2 * kv) + q * s.hidden + experts + shared_expert) + v * s.hidden


def _encoder(s: Shape, v: int) -> int:  # + the MLM head's transform (d·d) and decoder (V·d)
    return s.layers * (4 * s.hidden * s.hidden + 2 * s.hidden * s.ffn) + s.hidden * s.hidden + v * s.hidden


HAND_MATMUL_PARAMS: dict[str, Callable[[Shape, int], int]] = {
    "gpt2": lambda s, v: s.layers * (4 * s.hidden * s.hidden + 2 * s.hidden * s.ffn) + v * s.hidden,
    "llama": _llama_like,
    "mistral": _llama_like,
    "qwen2": _llama_like,
    "qwen3": _llama_like,
    "phi3": _llama_like,
    "olmo2": _llama_like,
    "gpt_neox": lambda s, v: (
        s.layers * (4 * s.hidden * s.hidden + 2 * s.hidden * s.ffn) + v * s.hidden
    ),  # fused qkv_proj / gate_up_proj hold the same weights as Llama's separate ones
    "gemma2": _llama_like,  # same matmuls; norms, q/k norms and soft-caps are not matmuls
    "gemma3_text": _llama_like,
    "bert": _encoder,
    "roberta": _encoder,
    "mixtral": _moe,
    "qwen3_moe": _moe,
    "olmoe": _moe,
    "qwen2_moe": lambda s, v: _moe(s, v, shared=s.ffn),  # the builder makes the shared expert as wide as one expert
}
"""Weights of every matmul one token passes through, counted by hand from the shape: attention
(q, k, v, out), MLP (gated: 3 matrices), the LM head (V·d, counted even when tied); mixture of experts: the
active weights only (`_moe`)."""


def _randomized_lm(name: str, tied: bool = True, seed: int = 0):
    """A tiny LM of family `name` with every parameter random (norm gains around 1, biases non-zero)."""
    config = registry_config(name, tied=tied, gqa=FAMILIES[name].config.kv_heads is not None, vocab=VOCAB)
    torch.manual_seed(seed)
    auto = AutoModelForMaskedLM if FAMILIES[name].task == "masked" else AutoModelForCausalLM
    return randomize(auto.from_config(config, dtype="float32"))


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from kinherit.data.sources import stdlib_files
    from kinherit.data.tokenizer import train_bpe

    path = tmp_path_factory.mktemp("walk-tok") / "tokenizer"
    train_bpe(iter(p.read_text() for p in stdlib_files() if p.parent.name == "json"), VOCAB, path)
    return path


def _save(model, folder: Path, tokenizer_dir: Path) -> Path:
    model.save_pretrained(str(folder))
    AutoTokenizer.from_pretrained(str(tokenizer_dir)).save_pretrained(str(folder))
    return folder


FAMILY_NAMES = sorted(FAMILIES)


def test_every_family_has_a_hand_count():
    assert set(HAND_MATMUL_PARAMS) == set(FAMILIES), "add the new family's hand count to HAND_MATMUL_PARAMS"


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_pretrains_grows_and_inherits(tmp_path, tiny_run, capsys, name):
    """Pre-train 2 steps from `model:` sizes, grow the saved folder through the CLI, then pre-train the grown
    folder (`model.from`) 2 steps with the small model as its KI teacher, and read its copies' divergence."""
    config = tiny_run(tmp_path / "run", family=name, max_steps=2, eval_steps=2, save_steps=2)
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    assert main(["pretrain", "--config", str(tmp_path / "run.yaml")]) == 0
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in logged if "loss" in r]
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))

    assert main(["grow", str(tmp_path / "run" / "model"), str(tmp_path / "grown"), "--hidden-size", "64"]) == 0
    grown = json.loads((tmp_path / "grown" / "growth.json").read_text())["report"]
    assert grown["target_shape"]["hidden"] == 64 and grown["exact_claimed"]
    assert max(c["max_abs_logits"] or c["max_abs_hidden"] for c in grown["comparisons"]) <= 1e-5

    # knowledge inheritance: the grown model trains 2 steps with the small one as its teacher; being an exact
    # copy of it, its first KD loss (before any update) is zero up to round-off. The linear schedule: the default
    # auto would stop at once for a student already as good as its teacher, and run no KD step to check
    config["out"], config["model"] = str(tmp_path / "ki"), {"from": str(tmp_path / "grown")}
    config["teacher"] = {"path": str(tmp_path / "run" / "model"), "schedule": "linear", "steps": 2}
    config["data"]["tokenizer"] = {"path": str(tmp_path / "grown")}
    (tmp_path / "ki.yaml").write_text(yaml.safe_dump(config))
    assert main(["pretrain", "--config", str(tmp_path / "ki.yaml")]) == 0
    logged = [json.loads(line) for line in (tmp_path / "ki" / "metrics.jsonl").read_text().splitlines()]
    kd = [r["kd_loss"] for r in logged if "kd_loss" in r]
    assert len(kd) == 2 and all(torch.isfinite(torch.tensor(kd))) and abs(kd[0]) < 1e-5

    # the divergence diagnostic reads the trained folder (its growth.json found through model.from)
    capsys.readouterr()
    assert main(["divergence", str(tmp_path / "ki" / "model")]) == 0
    table = capsys.readouterr().out
    assert "hidden" in table and "not in use" not in table, table


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_clone_and_identity_growth_is_exact_or_reported(tmp_path, tokenizer_dir, name):
    """Width (clone ×2) is exact for every family; 2× depth (identity) is exact where the family claims it,
    and otherwise reported with a measured deviation (never silently wrong)."""
    family = FAMILIES[name]
    src = _save(_randomized_lm(name, tied=False), tmp_path / "src", tokenizer_dir)
    width = grow_folder(src, tmp_path / "wide", hidden_size=64, seed=1)
    assert width.exact_claimed and width.max_deviation <= 1e-5, width.table()

    deep = grow_folder(src, tmp_path / "deep", hidden_size=64, num_layers=4, seed=1)
    if DEPTH_OPERATORS["identity"].claims_exact(family.residual, 2, 4):
        assert deep.exact_claimed and deep.max_deviation <= 1e-5, deep.table()
    else:
        assert not deep.exact_claimed and 1e-4 < deep.max_deviation < 50, deep.table()


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_classifier_head_maps_through_growth(tmp_path, tokenizer_dir, name):
    """B = grow(A) (clone, width only): B + G(A_tuned − A) with the widened head reproduces A_tuned's logits.
    A family whose record has no classifier head (transformers has no *ForSequenceClassification) is refused
    with a one-line error."""
    a = _save(_randomized_lm(name), tmp_path / "A", tokenizer_dir)
    model_type = FAMILIES[name].model_types[0]
    assert bool(FAMILIES[name].classifier) == (model_type in MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES)
    if not FAMILIES[name].classifier:
        with pytest.raises(KinheritError, match="olmoe model, for which transformers has no sequence classifier"):
            load_classifier(a, "A", ["x", "y", "z"], AutoTokenizer.from_pretrained(str(a)).pad_token_id)
        return
    tuned, _ = load_classifier(a, "A", ["x", "y", "z"], AutoTokenizer.from_pretrained(str(a)).pad_token_id)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in tuned.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    tuned.save_pretrained(str(tmp_path / "A_tuned"))
    grow_folder(a, tmp_path / "B", hidden_size=64)
    report = recycle_full(a, tmp_path / "A_tuned", tmp_path / "B", tmp_path / "init")
    assert report.mapped and not report.transferred

    ids = torch.randint(3, VOCAB, (2, 12), generator=gen)
    mask = torch.ones_like(ids)
    expected = tuned.eval()(input_ids=ids, attention_mask=mask).logits
    recycled = load_classifier(tmp_path / "init", "init")[0].eval()
    torch.testing.assert_close(recycled(input_ids=ids, attention_mask=mask).logits, expected, rtol=0, atol=1e-4)


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_flops_match_a_hand_count(name):
    model = _randomized_lm(name)
    assert task_of(model.config) == FAMILIES[name].task  # a saved folder is trained with the record's task
    shape = read_shape(FAMILIES[name], model.config)
    counted = flops_per_token(model, SEQ)
    assert counted.matmul_params == HAND_MATMUL_PARAMS[name](shape, VOCAB)
    attention = 4 * shape.layers * SEQ * shape.heads * shape.head_dim
    assert counted.forward == 2 * counted.matmul_params + attention


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_a_kinherit_tokenizer_next_to_the_model_reads_back_as_trained(tmp_path, tokenizer_dir, name):
    """transformers maps some model types (qwen2, phi3, ...) to their own tokenizer class, which would re-tokenize
    a kinherit BPE differently; `open_tokenizer` reads the folder's tokenizer.json as saved."""
    folder = _save(_randomized_lm(name), tmp_path / "model", tokenizer_dir)
    text = "def f(x):\n    return  x**2  # ünïcode\t\u00e9\u0301 end"
    trained = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    assert open_tokenizer(folder)(text).input_ids == trained(text).input_ids
    assert vocabulary_signature(open_tokenizer(folder)) == vocabulary_signature(trained)
