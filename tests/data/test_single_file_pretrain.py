import json

import yaml

from kinherit.cli import main


def test_pretrain_runs_on_one_text_file(tmp_path, tiny_run, capsys):
    """The README's example: `kinherit pretrain --config ... --data.sources=[corpus.txt]`."""
    book = tmp_path / "corpus.txt"
    book.write_text("".join(f"Sentence {i}: the quick brown fox jumps over {i % 17} lazy dogs.\n" for i in range(3000)))
    config = tiny_run(tmp_path / "out", max_steps=2, eval_steps=2, save_steps=2)
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    code = main(["pretrain", "--config", str(tmp_path / "run.yaml"), f"--data.sources=[{book}]"])
    out = capsys.readouterr().out
    assert code == 0 and "(contiguous split)" in out
    events = [json.loads(line) for line in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    assert any("val_loss" in e and e["val_loss"] > 0 for e in events)
    assert (tmp_path / "out" / "model" / "model.safetensors").is_file()


def test_a_run_longer_than_its_corpus_says_how_many_epochs_it_reads(tmp_path, tiny_run, capsys):
    """A small corpus is repeated by the data loader without a word; the run says so, once, at its start."""
    import re

    book = tmp_path / "corpus.txt"
    book.write_text("".join(f"Line {i}: a fox and {i % 7} dogs.\n" for i in range(300)))
    config = tiny_run(tmp_path / "out", max_steps=12, eval_steps=12, save_steps=12, per_device_train_batch_size=16)
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    assert main(["pretrain", "--config", str(tmp_path / "run.yaml"), f"--data.sources=[{book}]"]) == 0
    out = capsys.readouterr().out
    train = int(re.search(r"\): ([\d,]+) train tokens", out).group(1).replace(",", ""))
    read = 12 * 16 * 32
    assert read > train  # the corpus is smaller than the run
    assert out.count("epochs over") == 1
    assert (
        f"the run reads {read:,} tokens (12 steps × 512), {read / train:.1f} epochs over the {train:,} train tokens"
        in out
    )


def test_no_epochs_line_while_each_token_is_read_at_most_once():
    from kinherit.data.packing import epochs_notice

    assert epochs_notice(10_000, 512, 19) is None and epochs_notice(9_728, 512, 19) is None
    assert epochs_notice(9_727, 512, 19).startswith(
        "the run reads 9,728 tokens (19 steps × 512), 1.0 epochs over the 9,727"
    )
    assert epochs_notice(58_000, 4096, 55).startswith("the run reads 225,280 tokens (55 steps × 4,096), 3.9 epochs")
