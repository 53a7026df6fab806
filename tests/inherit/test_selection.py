"""Data selection scored by small models (`kinherit.inherit.selection`): the rule, its FLOPs, its cache, resume,
and that only training blocks are ever candidates."""

import json

import numpy as np
import pytest
import torch

from kinherit.config import validate_config
from kinherit.data.dataset import PackedBlocks
from kinherit.data.packing import prepare_corpus
from kinherit.errors import KinheritError
from kinherit.hf_folder import load_lm
from kinherit.inherit import selection as selection_module
from kinherit.inherit.selection import SelectedBlocks, block_nll, choose, select_training_data
from kinherit.metrics.flops import flops_per_token
from kinherit.metrics.log import read_metrics
from kinherit.train.pretrain import pretrain
from tests.conftest import CrashAt, _tiny_run

SEQ = 32


@pytest.fixture(scope="module")
def scorers(tmp_path_factory, cache_dir):
    """Two small causal LMs on the test corpus's tokenizer: a model (trained 6 steps) and a smaller reference (2
    steps)."""
    root = tmp_path_factory.mktemp("selection")
    model = pretrain(
        validate_config(
            _tiny_run(root / "model", cache_dir, "llama", max_steps=6, eval_steps=6, save_steps=6, logging_steps=6)
        )
    ).model_dir
    raw = _tiny_run(root / "reference", cache_dir, "llama", max_steps=2, eval_steps=2, save_steps=2, logging_steps=2)
    raw["model"].update(hidden_size=16, num_heads=2, intermediate_size=32, num_layers=1)
    return model, pretrain(validate_config(raw)).model_dir


def _run(out, cache_dir, selection, **train):
    raw = _tiny_run(out, cache_dir, "llama", **{"max_steps": 6, "eval_steps": 3, "save_steps": 2, **train})
    raw["selection"] = selection
    return validate_config(raw)


def _corpus(config):
    return prepare_corpus(config.data)


def test_the_rule_by_hand():
    scores = np.array([3.0, 1.0, 2.0, 5.0, 4.0, 2.0, 0.5, 6.0])  # ascending order: 6, 1, (2, 5), 0, 4, 3, 7
    assert choose(scores, "salt", keep=0.5, skip_easiest=0.25, seed=0).tolist() == [0, 2, 4, 5]  # ranks 2..5
    assert choose(scores, "salt", keep=0.25, skip_easiest=0.0, seed=0).tolist() == [1, 6]  # the easiest two
    assert choose(scores, "miniplm", keep=0.25, skip_easiest=0.0, seed=0).tolist() == [3, 7]  # the two highest
    assert choose(scores, "salt", keep=0.01, skip_easiest=0.99, seed=0).tolist() == [7]  # k ≥ 1, band inside the blocks
    # a tie at the band's edge (blocks 2 and 5 share rank 2–3) is broken by the seeded permutation
    edge = {tuple(choose(scores, "salt", keep=0.25, skip_easiest=0.25, seed=s).tolist()) for s in range(20)}
    assert edge == {(2, 5)}
    single = {tuple(choose(scores, "salt", keep=0.125, skip_easiest=0.25, seed=s).tolist()) for s in range(20)}
    assert single == {(2,), (5,)}
    assert (
        choose(scores, "salt", keep=0.125, skip_easiest=0.25, seed=3).tolist()
        == choose(scores, "salt", keep=0.125, skip_easiest=0.25, seed=3).tolist()
    )


def test_block_scores_are_the_models_own_loss(scorers, cache_dir, tmp_path):
    model_dir, _ = scorers
    corpus = _corpus(_run(tmp_path / "r", cache_dir, {"method": "salt", "model": str(model_dir)}))
    blocks = PackedBlocks(corpus.train_path, corpus.dtype, SEQ)
    model = load_lm(model_dir).eval()
    picked = [0, 1, 17, len(blocks) - 1]
    subset = torch.utils.data.Subset(blocks, picked)
    got = block_nll(model, subset, batch_size=3)
    for score, index in zip(got, picked):
        ids = blocks[index]["input_ids"][None]
        with torch.no_grad():
            assert score == pytest.approx(model(input_ids=ids, labels=ids).loss.item(), rel=1e-5)


@pytest.mark.parametrize("method", ["salt", "miniplm"])
def test_selected_set_obeys_the_rule_and_only_training_blocks_are_candidates(
    scorers, cache_dir, tmp_path, monkeypatch, method
):
    model_dir, reference = scorers
    selection = {"method": method, "model": str(model_dir), "keep": 0.3, "seed": 1, "batch_size": 64}
    if method == "miniplm":
        selection["reference"] = str(reference)
    config = _run(tmp_path / "r", cache_dir, selection)
    corpus = _corpus(config)
    seen = []
    original = block_nll
    monkeypatch.setattr(
        selection_module,
        "block_nll",
        lambda model, blocks, batch, device: seen.append(blocks) or original(model, blocks, batch, device),
    )
    result = select_training_data(config)
    train = PackedBlocks(corpus.train_path, corpus.dtype, SEQ)
    assert all(b.dataset.path == corpus.train_path and len(b) == len(train) for b in seen)  # never the validation split
    assert len(seen) == (2 if method == "miniplm" else 1)
    nll = block_nll(load_lm(model_dir).eval(), train, 64)
    if method == "salt":
        scores = nll
    else:
        scores = block_nll(load_lm(reference).eval(), train, 64) - nll
    n, k = len(train), round(0.3 * len(train))
    assert len(result.indices) == k and result.num_blocks == n
    kept = np.zeros(n, bool)
    kept[result.indices] = True
    if method == "salt":  # the centred band: 35% easier blocks below, 35% harder above
        order = np.argsort(scores, kind="stable")
        start = round(0.35 * n)
        assert (
            scores[kept].min() >= scores[order[start]] - 1e-12
            and scores[kept].max() <= scores[order[start + k - 1]] + 1e-12
        )
        assert (scores[~kept] < scores[kept].min()).sum() == start
    else:  # the top k differences
        assert scores[kept].min() >= scores[~kept].max()
    flops = sum(
        n * SEQ * flops_per_token(load_lm(p), SEQ).forward
        for p in [model_dir] + ([reference] if method == "miniplm" else [])
    )
    assert result.flops == flops


def test_a_seeded_sample_of_candidates_is_scored_and_counted(scorers, cache_dir, tmp_path, monkeypatch):
    model_dir, _ = scorers
    config = _run(
        tmp_path / "r",
        cache_dir,
        {"method": "salt", "model": str(model_dir), "candidates": 0.25, "keep": 0.5, "skip_easiest": 0.0, "seed": 2},
    )
    corpus = _corpus(config)
    train = PackedBlocks(corpus.train_path, corpus.dtype, SEQ)
    seen = []
    original = block_nll
    monkeypatch.setattr(
        selection_module,
        "block_nll",
        lambda model, blocks, batch, device: seen.append(blocks) or original(model, blocks, batch, device),
    )
    result = select_training_data(config)
    (pool,) = seen
    c = round(0.25 * len(train))
    assert pool.dataset.path == corpus.train_path and len(pool) == c == result.candidates
    drawn = np.array(pool.indices)
    assert drawn.tolist() == sorted(set(drawn.tolist())) and drawn.max() < len(train)
    assert drawn.tolist() == selection_module.draw_candidates(len(train), 0.25, 2).tolist()  # seeded: the same draw
    assert drawn.tolist() != selection_module.draw_candidates(len(train), 0.25, 3).tolist()
    scores = original(load_lm(model_dir).eval(), pool, 64)
    easiest = np.sort(drawn[np.argsort(scores, kind="stable")[: round(0.5 * c)]])  # the easier half of the candidates
    assert result.indices.tolist() == easiest.tolist()
    assert result.flops == c * SEQ * flops_per_token(load_lm(model_dir), SEQ).forward
    with pytest.raises(KinheritError, match=f"selection.candidates 100000 exceeds the {len(train)} training blocks"):
        select_training_data(
            config.model_copy(update={"selection": config.selection.model_copy(update={"candidates": 100000})})
        )


def test_the_cached_selection_is_reused_and_keyed_by_the_settings(scorers, cache_dir, tmp_path, monkeypatch):
    model_dir, _ = scorers
    config = _run(tmp_path / "r", cache_dir, {"method": "salt", "model": str(model_dir), "keep": 0.4, "seed": 5})
    first = select_training_data(config)
    assert json.loads(first.path.read_text())["indices"] == first.indices.tolist()
    monkeypatch.setattr(selection_module, "block_nll", lambda *a: pytest.fail("scored again"))
    again = select_training_data(config)
    assert again.path == first.path and again.indices.tolist() == first.indices.tolist() and again.flops == first.flops
    other = _run(tmp_path / "r", cache_dir, {"method": "salt", "model": str(model_dir), "keep": 0.4, "seed": 6})
    with pytest.raises(pytest.fail.Exception, match="scored again"):  # another setting, another cache entry
        select_training_data(other)


def test_selected_blocks_keep_the_epoch_of_the_wrapped_dataset():
    seen = []

    class Blocks(torch.utils.data.Dataset):
        def __len__(self):
            return 10

        def __getitem__(self, index):
            seen.append(index)
            return {}

    selected = SelectedBlocks(Blocks(), np.array([2, 5, 7]))
    assert len(selected) == 3
    for i in (0, 2, 3, 5):
        selected[i]
    assert seen == [2, 7, 12, 17]  # epoch 1 of block 2 is index 12 of the wrapped dataset


def _train_events(out):
    return [e for e in read_metrics(out / "metrics.jsonl") if "loss" in e]


def test_pretrain_trains_on_the_selection_counts_its_flops_and_resumes_exactly(
    scorers, cache_dir, tmp_path, monkeypatch
):
    model_dir, _ = scorers
    selection = {"method": "salt", "model": str(model_dir), "keep": 0.5}
    config = _run(tmp_path / "straight", cache_dir, selection)
    expected_selection = select_training_data(config)
    drawn = []
    original = SelectedBlocks.__getitem__
    monkeypatch.setattr(SelectedBlocks, "__getitem__", lambda self, i: drawn.append(original(self, i)) or drawn[-1])
    pretrain(config)
    corpus = _corpus(config)
    kept = {
        tuple(PackedBlocks(corpus.train_path, corpus.dtype, SEQ)[int(i)]["input_ids"].tolist())
        for i in expected_selection.indices
    }
    assert drawn and all(tuple(item["input_ids"].tolist()) in kept for item in drawn)  # selected training blocks only
    events = read_metrics(tmp_path / "straight" / "metrics.jsonl")
    student = flops_per_token(load_lm(tmp_path / "straight" / "model"), SEQ).train
    for event in events:
        assert event["selection_flops"] == expected_selection.flops
        assert event["flops"] == event["tokens"] * student + expected_selection.flops
    crashed = _run(tmp_path / "crashed", cache_dir, selection)
    with pytest.raises(RuntimeError, match="simulated crash"):
        pretrain(crashed, callbacks=[CrashAt(5)])
    pretrain(crashed, resume=True)
    expected, resumed = _train_events(tmp_path / "straight"), _train_events(tmp_path / "crashed")
    assert [e["step"] for e in resumed] == [e["step"] for e in expected]
    for old, new in zip(expected, resumed):
        for key in ("loss", "flops", "selection_flops"):
            assert abs(old[key] - new[key]) <= 1e-6, (old["step"], key, old[key], new[key])


@pytest.mark.parametrize(
    ("selection", "message"),
    [
        (
            {"method": "miniplm", "model": "m"},
            "config key selection.reference: method miniplm scores log p_model − log p_reference",
        ),
        (
            {"method": "salt", "model": "m", "reference": "r"},
            "config key selection.reference: used by method miniplm only",
        ),
        (
            {"method": "salt", "model": "m", "keep": 0.6, "skip_easiest": 0.5},
            "config key selection.skip_easiest: 0.5 + keep 0.6 exceeds 1",
        ),
        (
            {"method": "miniplm", "model": "m", "reference": "r", "skip_easiest": 0.1},
            "config key selection.skip_easiest: used by method salt only",
        ),
        ({"method": "salt", "keep": 0}, "config key selection.keep: Input should be greater than 0"),
        ({"method": "salt"}, "selection.model: needed to score the training blocks; set it (or teacher.path)"),
        ({"method": "random", "model": "m"}, "config key selection.method: Input should be 'salt' or 'miniplm'"),
        ({"method": "salt", "model": "m", "candidates": 0}, "config key selection.candidates: 0 must be a block count"),
        (
            {"method": "salt", "model": "m", "candidates": 1.5},
            "config key selection.candidates: 1.5 must be a block count",
        ),
    ],
)
def test_bad_settings_are_one_line_errors(cache_dir, tmp_path, selection, message):
    with pytest.raises(KinheritError, match="^[^\n]*$") as err:
        _run(tmp_path / "r", cache_dir, selection)
    assert message in str(err.value)


def test_a_missing_scoring_model_is_refused_before_scoring(cache_dir, tmp_path):
    with pytest.raises(KinheritError, match="is not a Hugging Face model folder"):
        select_training_data(_run(tmp_path / "r", cache_dir, {"method": "salt", "model": str(tmp_path / "nope")}))


def test_the_readme_example_runs(scorers, cache_dir, tmp_path, capsys):
    """README "The small model chooses the data": its config (at tiny sizes, on the test corpus), both commands
    and the Python snippet."""
    import re
    from pathlib import Path

    import yaml

    from kinherit.cli import main
    from kinherit.config import load_config

    readme = (Path(__file__).parents[2] / "docs" / "inherit.md").read_text()
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", readme, re.S) if b.startswith("# configs/select.yaml"))
    raw = yaml.safe_load(block)
    model_dir, reference = scorers
    tiny = _tiny_run(tmp_path / "big-selected", cache_dir, "llama", max_steps=2, eval_steps=2, save_steps=2)
    raw.update(out=tiny["out"], data=tiny["data"], train=tiny["train"])
    raw["model"].update(hidden_size=32, num_layers=2, num_heads=4)
    raw["teacher"]["path"] = raw["selection"]["model"] = str(model_dir)
    raw["selection"]["reference"] = str(reference)
    raw["selection"]["candidates"] = 1000  # the test corpus holds fewer blocks than the README's run consumes
    config = tmp_path / "select.yaml"
    config.write_text(yaml.safe_dump(raw))
    assert main(["pretrain", "--config", str(config)]) == 0
    assert (
        main(
            [
                "pretrain",
                "--config",
                str(config),
                "--selection.method=salt",
                "--selection.reference=null",
                f"--out={tmp_path / 'big-salt'}",
            ]
        )
        == 0
    )
    selection = select_training_data(load_config(config))
    print(
        f"kept {len(selection.indices)} of {selection.candidates} scored blocks ({selection.num_blocks} in all), "
        f"{selection.flops:.3g} FLOPs, cached in {selection.path}"
    )
    assert f"kept 500 of 1000 scored blocks ({selection.num_blocks} in all)" in capsys.readouterr().out
    for run in ("big-selected", "big-salt"):
        assert "selection_flops" in read_metrics(tmp_path / run / "metrics.jsonl")[-1]
