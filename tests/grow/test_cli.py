"""`kinherit grow` through `kinherit.cli.main`: success, failed verification, and bad input."""

from __future__ import annotations

import dataclasses
import json

import pytest

import kinherit.grow.api as api
from kinherit.grow.noise import DEFAULT_NOISE_DB
from kinherit.grow.verify import Verifier


def test_grow_writes_a_folder_and_prints_the_report(save_tiny, tmp_path, kinherit_main, capsys):
    src = save_tiny("gpt2")
    code = kinherit_main(["grow", str(src), str(tmp_path / "out"), "--hidden-size", "64", "--num-layers", "3",
                          "--noise-db", "20"])
    out = capsys.readouterr().out
    assert code == 0 and "result: PASS" in out and "max|dlogits|" in out
    growth = json.loads((tmp_path / "out" / "growth.json").read_text())
    assert growth["plan"]["target_config"]["n_embd"] == 64 and growth["report"]["passed"]
    assert not list(tmp_path.glob(".tmp-*"))  # written atomically


def test_failed_exact_verification_exits_1_and_writes_nothing(save_tiny, tmp_path, kinherit_main, capsys, monkeypatch):
    make_report = api._report

    def strict_report(*args):
        report = make_report(*args)
        report.tolerance = 0.0  # fp32 rounding (~1e-7) now exceeds the tolerance
        return report

    monkeypatch.setattr(api, "_report", strict_report)
    code = kinherit_main(["grow", str(save_tiny("llama", gqa=True)), str(tmp_path / "out"), "--hidden-size", "64"])
    assert code == 1 and "FAIL: deviation" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".tmp-*"))


def test_failure_after_the_reload_keeps_the_previous_output(save_tiny, tmp_path, kinherit_main, capsys, monkeypatch):
    """A folder that fails verification only once reloaded is never committed; an older OUT_DIR stays."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "marker").write_text("previous")
    check = Verifier.check

    def failing_reload(self, grown, label):
        comparisons = check(self, grown, label)
        if label == "reloaded":
            comparisons[0] = dataclasses.replace(comparisons[0], max_abs_logits=1.0)
        return comparisons

    monkeypatch.setattr(Verifier, "check", failing_reload)
    code = kinherit_main(["grow", str(save_tiny("llama", gqa=True)), str(out), "--hidden-size", "64"])
    assert code == 1 and "FAIL: deviation 1.00e+00" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["marker"] and not list(tmp_path.glob(".tmp-*"))


def test_noise_off_is_explicit_and_warns(save_tiny, tmp_path, kinherit_main, capsys):
    code = kinherit_main(["grow", str(save_tiny("llama", gqa=True)), str(tmp_path / "out"), "--hidden-size", "64",
                          "--noise-db", "off"])
    captured = capsys.readouterr()
    assert code == 0 and "noise=off" in captured.out
    assert "warning: symmetry-breaking noise is off" in captured.err and "stay identical copies" in captured.err
    growth = json.loads((tmp_path / "out" / "growth.json").read_text())
    assert growth["plan"]["noise"] is None


def test_noise_is_on_by_default(save_tiny, tmp_path, kinherit_main, capsys):
    code = kinherit_main(["grow", str(save_tiny("llama", gqa=True)), str(tmp_path / "out"), "--hidden-size", "64"])
    captured = capsys.readouterr()
    assert code == 0 and "warning" not in captured.err and "result: PASS" in captured.out
    noise = json.loads((tmp_path / "out" / "growth.json").read_text())["plan"]["noise"]
    assert noise["snr_db"] == DEFAULT_NOISE_DB and noise["std"]


@pytest.mark.parametrize(
    ("family", "args", "message"),
    [
        ("llama", ["--hidden-size", "16"], "--hidden-size 16 is smaller than the source's 32"),
        ("llama", ["--num-layers", "1"], "--num-layers 1 is smaller than the source's 2"),
        ("llama", ["--hidden-size", "48"], "--width clone needs integer multiples, but hidden 32->48 is x1.5"),
        ("gpt2", ["--hidden-size", "64", "--num-heads", "5"], "--num-heads 5 does not divide --hidden-size 64"),
        ("gpt2", ["--hidden-size", "64", "--num-heads", "4"], "head_dim 16, but the source's head_dim is 8"),
        ("llama", ["--hidden-size", "64", "--num-heads", "8", "--num-kv-heads", "3"],
         "--num-kv-heads 3 does not divide the 8 heads"),
        ("llama", ["--hidden-size", "64", "--num-kv-heads", "8"], "query groups cannot be split"),
        ("bert", ["--hidden-size", "64", "--num-kv-heads", "4"], "family bert has no grouped-query attention"),
    ],
)
def test_bad_sizes_are_one_line_errors(save_tiny, tmp_path, kinherit_main, capsys, family, args, message):
    src = save_tiny(family, gqa=family == "llama")
    code = kinherit_main(["grow", str(src), str(tmp_path / "out"), *args])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and err.startswith("kinherit grow: error: ") and message in err, err
    assert not (tmp_path / "out").exists()


def test_unsupported_family_lists_the_supported_ones(tmp_path, kinherit_main, capsys):
    import transformers

    transformers.T5Config(d_model=16, d_ff=32, num_layers=1, num_heads=2, vocab_size=50).save_pretrained(tmp_path / "t5")
    (tmp_path / "t5" / "model.safetensors").write_bytes(b"")
    code = kinherit_main(["grow", str(tmp_path / "t5"), str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "unsupported model family 't5'" in err and "gpt2 (GPT2Model, GPT2LMHeadModel)" in err and "bert (" in err


@pytest.mark.parametrize("make", ["empty", "missing", "no-weights"])
def test_not_a_model_folder(tmp_path, kinherit_main, capsys, make):
    folder = tmp_path / "folder"
    if make != "missing":
        folder.mkdir()
    if make == "no-weights":
        (folder / "config.json").write_text('{"model_type": "llama"}')
    code = kinherit_main(["grow", str(folder), str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert ("has a config.json but no weights" if make == "no-weights" else "is not a Hugging Face model folder") in err
