from transformers import AutoTokenizer

from kinherit.data.tokenizer import EOS, MASK, PAD, train_bpe


def test_trained_bpe_round_trips_and_loads_with_auto(tmp_path):
    docs = ["def add(a, b):\n    return a + b\n", "class Foo:\n    pass\n", "ünïcode → text\t\n"] * 50
    tokenizer = train_bpe(iter(docs), vocab_size=300, out_dir=tmp_path / "tok")
    reloaded = AutoTokenizer.from_pretrained(str(tmp_path / "tok"))
    assert len(reloaded) == len(tokenizer) <= 300
    for text in docs[:3] + ["never seen: 🙂 zebra"]:  # byte-level: any text round-trips
        ids = reloaded(text, add_special_tokens=False)["input_ids"]
        assert reloaded.decode(ids) == text
    assert reloaded.eos_token == EOS and reloaded.pad_token == PAD and reloaded.mask_token == MASK
    assert len(reloaded("def add(a, b):", add_special_tokens=False)["input_ids"]) < len("def add(a, b):")
