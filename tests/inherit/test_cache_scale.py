"""The teacher cache at scale: built by several processes (identical files), and top-p rows of variable length
whose padding every KD loss ignores exactly."""

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
from kinherit.inherit.cache import CachedTeacherBlocks, nucleus, open_cache
from kinherit.kd.losses import KD_LOSSES, TopK, kd_loss
from kinherit.metrics.log import read_metrics
from kinherit.train.pretrain import pretrain
from tests.conftest import torchrun_cli
from tests.inherit.conftest import student_run

TOP_P, CAP = 0.3, 32


def test_nucleus_keeps_the_fewest_likeliest_tokens_reaching_p():
    probs = torch.tensor([[0.5, 0.3, 0.1, 0.06, 0.04], [0.95, 0.02, 0.01, 0.01, 0.01]])
    top, counts = nucleus(probs.log(), top_k=4, top_p=0.85)
    assert counts.tolist() == [3, 1]  # 0.5 + 0.3 < 0.85 ≤ 0.9; 0.95 ≥ 0.85 alone
    assert top.indices[0].tolist() == [0, 1, 2, 3]
    torch.testing.assert_close(top.log_probs[0, :3].exp(), torch.tensor([5, 3, 1]) / 9)
    assert top.log_probs[0, 3] == top.log_probs[1, 1] == float("-inf")
    assert nucleus(probs.log(), top_k=2, top_p=0.99)[1].tolist() == [2, 2]  # K caps k: the byte budget


@pytest.mark.parametrize("loss", list(KD_LOSSES))
def test_padding_adds_nothing_to_any_kd_loss(loss):
    """A padded top-p batch gives the loss and gradient of each row's own k tokens, to fp64 round-off."""
    gen = torch.Generator().manual_seed(0)
    teacher = torch.randn(2, 6, 50, generator=gen) * 3
    student = torch.randn(2, 6, 50, generator=gen, dtype=torch.float64, requires_grad=True)
    top, counts = nucleus(teacher, top_k=8, top_p=0.8)
    assert set(counts.flatten().tolist()) > {1, 8}  # rows of one token, capped rows and rows in between
    padded = kd_loss(student, TopK(top.log_probs.double(), top.indices), 2.0, loss=loss)
    (grad,) = torch.autograd.grad(padded, student)
    rows, row_grads = [], []
    for b, t in np.ndindex(2, 6):
        k, s = int(counts[b, t]), student[b, t][None]
        rows.append(
            kd_loss(s, TopK(top.log_probs[b, t, :k][None].double(), top.indices[b, t, :k][None]), 2.0, loss=loss)
        )
        row_grads.append(torch.autograd.grad(rows[-1], s)[0][0] / 12)
    torch.testing.assert_close(padded, torch.stack(rows).mean(), rtol=1e-12, atol=0)
    torch.testing.assert_close(grad, torch.stack(row_grads).view(2, 6, 50), rtol=1e-10, atol=1e-15)


@pytest.fixture(scope="module")
def run_yaml(tmp_path_factory, cache_dir):
    path = tmp_path_factory.mktemp("scale") / "run.yaml"
    path.write_text(yaml.safe_dump(student_run(path.parent / "unused", cache_dir)))
    return path


def _build(teacher_dir, run_yaml, out, *extra):
    return ["cache-teacher", "--teacher", str(teacher_dir), "--config", str(run_yaml), "--out", str(out), *extra]


def _files(root):
    return {path.name: path.read_bytes() for path in sorted(root.iterdir())}


@pytest.fixture(scope="module")
def top_p_cache(tmp_path_factory, teacher_dir, run_yaml):
    out = tmp_path_factory.mktemp("top-p") / "cache"
    assert main(_build(teacher_dir, run_yaml, out, "--top-k", str(CAP), "--top-p", str(TOP_P))) == 0
    return out


def test_two_process_top_p_cache_is_the_one_process_cache_byte_for_byte(tmp_path, teacher_dir, run_yaml, top_p_cache):
    torchrun_cli(_build(teacher_dir, run_yaml, tmp_path / "parallel", "--top-k", str(CAP), "--top-p", str(TOP_P)))
    one, two = _files(top_p_cache), _files(tmp_path / "parallel")
    assert sorted(one) == ["counts.bin", "indices.bin", "log_probs.bin", "meta.json", "offsets.bin"]
    assert one == two  # every file, meta.json included; the parts are gone


@pytest.mark.slow
def test_two_process_top_k_cache_is_the_one_process_cache_byte_for_byte(tmp_path, teacher_dir, run_yaml):
    assert main(_build(teacher_dir, run_yaml, tmp_path / "one", "--top-k", "10")) == 0
    torchrun_cli(_build(teacher_dir, run_yaml, tmp_path / "two", "--top-k", "10"))
    assert _files(tmp_path / "one") == _files(tmp_path / "two")


def test_top_p_cache_rows_are_the_teachers_nucleus_and_smaller(top_p_cache, cache_dir, teacher_dir, capsys):
    config = validate_config(student_run(top_p_cache / "x", cache_dir))
    corpus = prepare_corpus(config.data)
    cache = open_cache(top_p_cache, corpus, 32)
    meta = json.loads((top_p_cache / "meta.json").read_text())
    assert meta["top_p"] == TOP_P and meta["top_k"] == CAP and meta["count_dtype"] == "uint8"
    mean_k = meta["kept"] / cache.rows
    assert 1 < mean_k < CAP
    assert cache.bytes_per_token == pytest.approx(mean_k * 4 + 1 + 8 * (meta["num_blocks"] + 1) / cache.rows)

    blocks = PackedBlocks(corpus.train_path, corpus.dtype, 32)
    item = CachedTeacherBlocks(blocks, cache, CAP)[2 * len(blocks) + 41]  # epoch 2: block 41's rows
    with torch.no_grad():
        logits = load_lm(teacher_dir).eval()(input_ids=item["input_ids"][None]).logits[..., : meta["vocab"]]
    online, counts = nucleus(logits, CAP, TOP_P)
    stored = item["teacher_log_probs"].float()
    assert torch.equal(stored.isneginf(), online.log_probs[0].isneginf())  # the same k per row
    assert torch.equal(item["teacher_indices"][~stored.isneginf()], online.indices[0][~stored.isneginf()])
    torch.testing.assert_close(stored, online.log_probs[0], rtol=1e-3, atol=1e-3)  # fp16 storage
    few = CachedTeacherBlocks(blocks, cache, 2)[41]  # teacher.top_k = 2: each row's first min(k, 2)
    assert torch.equal(few["teacher_indices"], torch.where(stored[:, :2].isneginf(), 0, item["teacher_indices"][:, :2]))


def test_ki_from_a_top_p_cache(tmp_path, top_p_cache, cache_dir):
    run = student_run(
        tmp_path / "student", cache_dir, {"cache": str(top_p_cache), "steps": 3}, max_steps=3, eval_steps=3
    )
    pretrain(validate_config(run))
    train = [e for e in read_metrics(tmp_path / "student" / "metrics.jsonl") if "loss" in e]
    assert all(np.isfinite(e["kd_loss"]) and e["kd_loss"] > 0 for e in train) and len(train) == 3
