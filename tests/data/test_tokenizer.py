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


ADVERSARIAL = (
    "def f(x):\n    return x  \n\nclass A:\n\tpass\n"  # indentation, trailing spaces, blank lines, tabs
    "it's\nthe end.\n  \n'll\n\u00e9t\u00e9\n\u00a0x\ny\n"  # contractions, non-ASCII letters, no-break space
    "a\n\n\nb\nc \nd\n 12\n34\n"
) * 40


def test_bpe_pieces_rejoin_and_train_the_same_tokenizer(tmp_path):
    """Cutting documents into pieces for the BPE trainer (bounded buffer) must not change the trained BPE."""
    from kinherit.data.tokenizer import bpe_pieces

    pieces = list(bpe_pieces([ADVERSARIAL, "short"], size=64))
    assert "".join(pieces) == ADVERSARIAL + "short" and len(pieces) > 40
    assert max(len(p) for p in pieces) < 64 + 40  # each piece ends at the first neutral cut after `size`
    # the invariant itself: the byte-level pre-tokenizer gives the same words on the pieces as on the whole
    from tokenizers import pre_tokenizers

    words = lambda text: [w for w, _ in pre_tokenizers.ByteLevel(add_prefix_space=False).pre_tokenize_str(text)]  # noqa: E731
    finest = list(bpe_pieces([ADVERSARIAL], size=1))  # a cut at every neutral line start
    assert len(finest) > 200 and [w for piece in finest for w in words(piece)] == words(ADVERSARIAL)
    whole = train_bpe(iter([ADVERSARIAL]), 300, tmp_path / "whole")
    # train on the pieces themselves, each fed whole: the same merges as the whole document
    cut = train_bpe(iter(list(bpe_pieces([ADVERSARIAL], size=64))), 300, tmp_path / "cut")
    assert (tmp_path / "whole" / "tokenizer.json").read_text() == (tmp_path / "cut" / "tokenizer.json").read_text()
    assert whole.get_vocab() == cut.get_vocab()
