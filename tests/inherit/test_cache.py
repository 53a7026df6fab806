"""Offline teacher cache: built once by `kinherit cache-teacher`, equal to online top-K KI, tied to its data."""

import json

import numpy as np
import pytest
import torch
import yaml

from kinherit.cli import main
from kinherit.config import validate_config
from kinherit.data.dataset import PackedBlocks
from kinherit.data.packing import prepare_corpus
from kinherit.hf_folder import load_lm
from kinherit.inherit.cache import CachedTeacherBlocks, open_cache
from kinherit.inherit.teacher import TeacherSpec
from kinherit.kd.losses import TopK, kd_loss
from kinherit.metrics.log import read_metrics
from kinherit.train.pretrain import pretrain
from tests.inherit.conftest import student_run

K = 10
# fp16 keeps 11 significant bits: each stored log-probability is off by ≤ 2⁻¹¹ relative (≈ 5e-4), which moves
# the KL of a step by ~1e-4 and, through a few optimizer steps, the losses by well under 1e-3.
TOLERANCE = 1e-3


@pytest.fixture(scope="module")
def cache(tmp_path_factory, cache_dir, teacher_dir):
    root = tmp_path_factory.mktemp("cache")
    (root / "run.yaml").write_text(yaml.safe_dump(student_run(root / "unused", cache_dir)))
    out = root / "teacher-cache"
    assert (
        main(
            [
                "cache-teacher",
                "--teacher",
                str(teacher_dir),
                "--config",
                str(root / "run.yaml"),
                "--top-k",
                str(K),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    return out


def test_cache_layout_and_rows_match_the_online_teacher(cache, cache_dir, teacher_dir):
    config = validate_config(student_run(cache / "x", cache_dir))
    corpus = prepare_corpus(config.data)
    meta = json.loads((cache / "meta.json").read_text())
    assert meta["corpus_fingerprint"] == corpus.fingerprint and meta["seq_len"] == 32 and meta["top_k"] == K
    assert meta["index_dtype"] == "uint16" and len(meta["teacher"]["digest"]) == 16
    blocks = PackedBlocks(corpus.train_path, corpus.dtype, 32)
    cached = CachedTeacherBlocks(blocks, open_cache(cache, corpus, 32), K)
    assert len(cached) == len(blocks) == meta["num_blocks"]

    teacher = load_lm(teacher_dir).eval()
    index = 3 * len(blocks) + 17  # an epoch-3 sample index: the same block, the same cached rows
    item = cached[index]
    with torch.no_grad():
        online = TopK.from_logits(teacher(input_ids=item["input_ids"][None]).logits[..., : meta["vocab"]], K)
    stored = TopK(item["teacher_log_probs"][None].float(), item["teacher_indices"][None])
    assert torch.equal(stored.indices, online.indices) or (stored.indices != online.indices).float().mean() < 0.01
    student_logits = torch.randn(1, 32, meta["vocab"], generator=torch.Generator().manual_seed(0))
    a, b = kd_loss(student_logits, online, 2.0), kd_loss(student_logits, stored, 2.0)
    assert abs(a - b) <= TOLERANCE * a


def test_cached_ki_equals_online_top_k_ki_without_loading_a_teacher(
    tmp_path, cache, cache_dir, teacher_dir, monkeypatch
):
    online = student_run(
        tmp_path / "online",
        cache_dir,
        {"path": str(teacher_dir), "schedule": "linear", "steps": 4, "top_k": K},
        max_steps=5,
        eval_steps=5,
    )
    pretrain(validate_config(online))
    monkeypatch.setattr(TeacherSpec, "load", lambda self: pytest.fail("a cached run must not load the teacher"))
    cached = student_run(tmp_path / "cached", cache_dir, {"cache": str(cache), "steps": 4}, max_steps=5, eval_steps=5)
    pretrain(validate_config(cached))

    def events(name):
        return [e for e in read_metrics(tmp_path / name / "metrics.jsonl") if "loss" in e]

    for a, b in zip(events("online"), events("cached"), strict=True):
        for key in ("loss", "lm_loss", "kd_loss"):
            if key in a:
                assert abs(a[key] - b[key]) <= TOLERANCE, (a["step"], key, a[key], b[key])
        assert a["alpha"] == b["alpha"] and a["teacher_flops"] == b["teacher_flops"] and a["flops"] == b["flops"]


def test_one_cache_serves_another_student_and_rejects_other_data(tmp_path, cache, cache_dir, capsys):
    other = student_run(
        tmp_path / "gpt2",
        cache_dir,
        {"cache": str(cache), "steps": 2, "top_k": 4},
        family="gpt2",
        max_steps=2,
        eval_steps=2,
    )
    pretrain(validate_config(other))
    assert [("kd_loss" in e) for e in read_metrics(tmp_path / "gpt2" / "metrics.jsonl") if "loss" in e] == [True, True]

    wrong = student_run(tmp_path / "wrong", cache_dir, {"cache": str(cache)})
    wrong["data"]["seq_len"] = 16
    (tmp_path / "wrong.yaml").write_text(yaml.safe_dump(wrong))
    capsys.readouterr()
    assert main(["pretrain", "--config", str(tmp_path / "wrong.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert (
        err.startswith("kinherit pretrain: error: teacher.cache")
        and "built for different data" in err
        and "fingerprint mismatch" in err
    )
    assert main(["pretrain", "--config", str(tmp_path / "wrong.yaml"), "--data.seq_len=32", "--teacher.top_k=11"]) == 2
    assert "teacher.top_k 11 exceeds the 10 tokens stored" in capsys.readouterr().err
    assert not np.isnan(np.memmap(cache / "log_probs.bin", dtype=np.float16, mode="r")[:1000].astype(np.float32)).any()
