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
