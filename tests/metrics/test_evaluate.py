"""`kinherit eval MODEL --data FILE`: perplexity on unseen text packed as pretrain packs (checked against a direct
forward pass), refused for another tokenizer or for text the model trained on; report.md shows a seeded, sampled
continuation."""

import math
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from kinherit.cli import main
from kinherit.config import validate_config
from kinherit.errors import KinheritError
from kinherit.metrics.evaluate import evaluate_model, sample
from kinherit.metrics.report import build_report
from kinherit.train.pretrain import pretrain
from tests.conftest import SMALL_CORPUS, STDLIB


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cache_dir):
    from tests.conftest import _tiny_run

    out = tmp_path_factory.mktemp("eval") / "run"
    return pretrain(
        validate_config(_tiny_run(out, cache_dir, "llama", max_steps=4, eval_steps=4, save_steps=4))
    ).model_dir


def test_perplexity_equals_a_direct_forward_pass_on_the_same_blocks(trained):
    text = STDLIB / "textwrap.py"  # outside SMALL_CORPUS (json, email, logging)
    result = evaluate_model(trained, str(text), batch_size=3)
    tokenizer = AutoTokenizer.from_pretrained(str(trained))
    model = AutoModelForCausalLM.from_pretrained(str(trained)).eval()
    ids = tokenizer(text.read_text(), add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
    blocks = torch.tensor(ids[: len(ids) // 32 * 32]).view(-1, 32)  # (N, 32)
    with torch.no_grad():
        logits = model(blocks).logits[:, :-1]  # (N, 31, V)
    nll = torch.nn.functional.cross_entropy(logits.flatten(0, 1), blocks[:, 1:].flatten())
    assert result.seq_len == 32 and result.blocks == blocks.shape[0] and result.tokens == len(ids)
    assert result.predicted == blocks.shape[0] * 31
    assert result.loss == pytest.approx(float(nll), abs=1e-5) and result.perplexity == pytest.approx(
        math.exp(result.loss)
    )


def test_cli_prints_one_line(trained, capsys):
    assert main(["eval", str(trained), "--data", str(STDLIB / "textwrap.py")]) == 0
    out = capsys.readouterr().out.strip().splitlines()[-1]
    assert out.startswith(f"{trained} on {STDLIB / 'textwrap.py'}: loss ") and "blocks of 32)" in out


def test_another_tokenizer_is_refused(trained, tmp_path, capsys):
    tokenizer = AutoTokenizer.from_pretrained(str(trained))
    tokenizer.add_tokens(["<extra>"])
    tokenizer.save_pretrained(str(tmp_path / "other"))
    assert (
        main(["eval", str(trained), "--data", str(STDLIB / "textwrap.py"), "--tokenizer", str(tmp_path / "other")]) == 2
    )
    assert f"--tokenizer {tmp_path / 'other'} differs from the tokenizer of {trained}" in capsys.readouterr().err


def test_text_the_model_trained_on_is_refused(trained):
    with pytest.raises(KinheritError, match=r"is part of the corpus .*json that .* trained on"):
        evaluate_model(trained, str(SMALL_CORPUS[0]) + "/decoder.py")


def test_report_shows_a_seeded_sample_that_is_not_one_repeated_token(trained, tmp_path):
    run = trained.parent
    state = torch.random.get_rng_state()
    expected = sample(trained, "The ")
    assert torch.equal(torch.random.get_rng_state(), state)  # seeded on its own: the caller's RNG is untouched
    assert expected.startswith("The ") and len(expected) > len("The ")
    assert sample(trained, "The ") == expected  # seeded: the same text every time
    tokenizer = AutoTokenizer.from_pretrained(str(trained))
    new = tokenizer(expected[len("The ") :], add_special_tokens=False).input_ids
    assert len(set(new)) >= 8, expected  # greedy decoding of this 4-step model repeats one or two tokens
    assert expected.strip() != "The"  # not blank lines
    build_report([run], tmp_path / "r")
    text = (tmp_path / "r" / "report.md").read_text()
    assert f"**run**\n\n```\n{expected}\n```" in text
    assert (
        "32 new tokens after the prompt 'The ', sampled at temperature 0.8 from the top 40 tokens, repetition "
        "penalty 1.2, seed 0" in text
    )


def test_a_masked_lm_is_scored_on_its_masked_positions(tmp_path, tiny_run):
    raw = tiny_run(tmp_path / "bert", family="bert", max_steps=2, eval_steps=2, save_steps=2)
    model_dir = pretrain(validate_config(raw)).model_dir
    first = evaluate_model(model_dir, str(STDLIB / "textwrap.py"))
    again = evaluate_model(model_dir, str(STDLIB / "textwrap.py"))
    assert first == again and math.isfinite(first.loss)  # the masking is seeded
    positions = first.blocks * first.seq_len
    assert 0.10 * positions < first.predicted < 0.20 * positions  # 15% of the (non-special) tokens
    assert sample(model_dir) is None  # no generation for a masked LM


def test_a_run_folder_given_as_model_names_its_model_folder(trained, capsys):
    assert main(["eval", str(trained.parent), "--data", str(STDLIB / "textwrap.py")]) == 2
    assert f"(it is a run folder: give its model, {trained})" in capsys.readouterr().err


def test_a_copy_of_a_training_file_is_refused_by_its_content(trained, tmp_path):
    original = SMALL_CORPUS[0] + "/decoder.py"
    copy = tmp_path / "elsewhere" / "my_text.py"
    copy.parent.mkdir()
    copy.write_bytes(Path(original).read_bytes())
    (copy.parent / "__init__.py").write_text("")  # an empty file matches many training files: not compared
    for data in (copy, copy.parent):
        with pytest.raises(
            KinheritError,
            match=rf"^{copy} has the same content as {original}, part of the corpus .*json that "
            rf".* trained on",
        ):
            evaluate_model(trained, str(data))
    copy.write_bytes(Path(original).read_bytes() + b"\n# edited\n")  # other text: evaluated
    (copy.parent / "__init__.py").unlink()
    assert evaluate_model(trained, str(copy)).blocks > 0
