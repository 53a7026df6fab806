"""`kinherit grow` through `kinherit.cli.main`: success, failed verification, and bad input."""

from __future__ import annotations

import dataclasses
import json

import pytest

import kinherit.grow.api as api
from kinherit.grow.options import DEFAULT_NOISE_DB
from kinherit.grow.verify import Verifier


def test_grow_writes_a_folder_and_prints_the_report(save_tiny, tmp_path, kinherit_main, capsys):
    src = save_tiny("gpt2")
    code = kinherit_main(
        ["grow", str(src), str(tmp_path / "out"), "--hidden-size", "64", "--num-layers", "3", "--noise-db", "20"]
    )
    out = capsys.readouterr().out
    assert code == 0 and "result: PASS" in out and "max|dlogits|" in out
    assert "noise: SNR 20 dB, std 0.1× the weights' (symmetry breaking on)" in out
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
            comparisons[0] = dataclasses.replace(comparisons[0], max_abs_logits=comparisons[0].scale)  # relative 1
        return comparisons

    monkeypatch.setattr(Verifier, "check", failing_reload)
    code = kinherit_main(["grow", str(save_tiny("llama", gqa=True)), str(out), "--hidden-size", "64", "--overwrite"])
    assert code == 1 and "FAIL: deviation 1.00e+00" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["marker"] and not list(tmp_path.glob(".tmp-*"))


def test_noise_off_is_explicit_and_warns(save_tiny, tmp_path, kinherit_main, capsys):
    code = kinherit_main(
        ["grow", str(save_tiny("llama", gqa=True)), str(tmp_path / "out"), "--hidden-size", "64", "--noise-db", "off"]
    )
    captured = capsys.readouterr()
    assert code == 0 and "noise: off (duplicated units stay identical)" in captured.out
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
        (
            "llama",
            ["--hidden-size", "64", "--num-heads", "8", "--num-kv-heads", "3"],
            "--num-kv-heads 3 does not divide the 8 heads",
        ),
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

    transformers.T5Config(d_model=16, d_ff=32, num_layers=1, num_heads=2, vocab_size=50).save_pretrained(
        tmp_path / "t5"
    )
    (tmp_path / "t5" / "model.safetensors").write_bytes(b"")
    code = kinherit_main(["grow", str(tmp_path / "t5"), str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert (
        code == 2
        and "unsupported model family 't5'" in err
        and "gpt2 (GPT2Model, GPT2LMHeadModel)" in err
        and "bert (" in err
    )


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


def test_a_non_empty_out_dir_is_refused_and_kept(save_tiny, tmp_path, kinherit_main, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code = kinherit_main(["grow", str(save_tiny("gpt2")), str(out), "--hidden-size", "64"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and err.startswith("kinherit grow: error: "), err
    assert f"OUT_DIR {out} is not empty (it holds notes.txt); pass --overwrite" in err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"] and (out / "notes.txt").read_text() == "mine"


def test_overwrite_replaces_only_kinherits_outputs(save_tiny, tmp_path, kinherit_main, capsys):
    """A re-growth with --overwrite replaces config, weights, tokenizer files and growth.json (and drops an
    older growth's extra weight shard), and keeps every other file and folder, hard-linked, not copied."""
    src, out = save_tiny("gpt2"), tmp_path / "out"
    assert kinherit_main(["grow", str(src), str(out), "--hidden-size", "64"]) == 0
    (out / "notes.txt").write_text("mine")
    (out / "runs" / "a").mkdir(parents=True)
    (out / "runs" / "a" / "log.txt").write_text("run log")
    (out / "model-00002-of-00002.safetensors").write_bytes(b"an older growth's shard")
    inode = (out / "notes.txt").stat().st_ino
    assert kinherit_main(["grow", str(src), str(out), "--hidden-size", "96", "--overwrite"]) == 0
    assert json.loads((out / "growth.json").read_text())["plan"]["target_config"]["n_embd"] == 96
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json",
        "generation_config.json",
        "growth.json",
        "model.safetensors",
        "notes.txt",
        "runs",
    ]
    assert (out / "notes.txt").read_text() == "mine" and (out / "runs" / "a" / "log.txt").read_text() == "run log"
    assert (out / "notes.txt").stat().st_ino == inode
    assert not list(tmp_path.glob(".tmp-*"))
    capsys.readouterr()


def test_python_grow_folder_refuses_a_non_empty_out_unless_overwrite(save_tiny, tmp_path):
    from kinherit.errors import KinheritError

    src, out = save_tiny("llama", gqa=True), tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(KinheritError, match="is not empty"):
        api.grow_folder(src, out, hidden_size=64)
    report = api.grow_folder(src, out, hidden_size=64, overwrite=True)
    assert report.passed and (out / "notes.txt").read_text() == "mine" and (out / "model.safetensors").is_file()


def test_dry_run_prints_the_plan_and_writes_nothing(save_tiny, tmp_path, kinherit_main, capsys):
    src, out = save_tiny("llama", gqa=True), tmp_path / "out"
    code = kinherit_main(
        [
            "grow",
            str(src),
            str(out),
            "--hidden-size",
            "64",
            "--intermediate-size",
            "80",
            "--num-layers",
            "3",
            "--width",
            "net2net",
            "--dry-run",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0 and not out.exists() and f"dry run: nothing written to {out}" in printed
    grown = api.grow(
        api.load_architecture(src, "LlamaForCausalLM"),
        hidden_size=64,
        intermediate_size=80,
        num_layers=3,
        width="net2net",
        verify=False,
    ).model
    source_params = sum(p.numel() for p in api.load_architecture(src, "LlamaForCausalLM").parameters())
    assert f"{source_params:>14,}" in printed and f"{sum(p.numel() for p in grown.parameters()):>14,}" in printed
    lines = [line.split() for line in printed.splitlines()]
    assert ["hidden", "32", "→", "64", "net2net", "copies", "×2"] in lines
    assert ["ffn", "64", "→", "80", "net2net", "copies", "×1/2"] in lines
    assert ["heads", "4", "→", "8", "net2net", "copies", "×2"] in lines
    assert ["layers", "2", "→", "3", "identity", "1", "new", "layers", "with", "zeroed", "residual", "outputs"] in lines
    assert "max|dlogits|" not in printed  # nothing was compared


def test_the_default_noise_does_not_read_as_no_noise(save_tiny, tmp_path, kinherit_main, capsys):
    """0 dB is an SNR: noise as strong as the weights, not "no noise"."""
    assert DEFAULT_NOISE_DB == 0
    assert kinherit_main(["grow", str(save_tiny("llama")), str(tmp_path / "out"), "--hidden-size", "64"]) == 0
    out = capsys.readouterr().out
    assert "noise: SNR 0 dB, std 1× the weights' (symmetry breaking on)" in out and "noise=0 dB" not in out


def test_a_run_folder_as_source_names_its_model_folder(save_tiny, tmp_path, kinherit_main, capsys):
    model = save_tiny("llama", name="run/model")
    capsys.readouterr()
    assert kinherit_main(["grow", str(model.parent), str(tmp_path / "out"), "--hidden-size", "64"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"kinherit grow: error: SRC_DIR {model.parent} is not a Hugging Face model "
        f"folder (no config.json) (it is a run folder: give its model, {model})"
    )
