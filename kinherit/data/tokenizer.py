"""Tokenizers: train a byte-level BPE on the corpus, or load an existing HF tokenizer folder.

The trained tokenizer is saved as a normal `PreTrainedTokenizerFast` folder; `hf_folder.open_tokenizer`
loads it as saved (see there why not always through `AutoTokenizer`). Special tokens: `<|endoftext|>` (bos/eos and the
document separator when packing), `<pad>`, `<mask>` (masked LM), `<unk>`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from transformers import PreTrainedTokenizerFast

from kinherit.errors import KinheritError
from kinherit.hf_folder import open_tokenizer
from kinherit.io import atomic_dir

EOS = "<|endoftext|>"
PAD = "<pad>"
MASK = "<mask>"
UNK = "<unk>"
SPECIAL_TOKENS = [EOS, PAD, MASK, UNK]
PIECE_CHARS = 1 << 16
_NEUTRAL_CUT = re.compile(r"(?<=[!-~]\n)(?=[!-~])")  # a line start between two printable ASCII characters


def bpe_pieces(documents: Iterable[str], size: int = PIECE_CHARS) -> Iterator[str]:
    """Each document cut into pieces of about `size` characters (more where no cut is found), at line starts
    that sit between printable ASCII characters (`x\n|y`). The byte-level pre-tokenizer's words never span such
    a cut (the lone newline is a word of its own, before and after the cut), so the word counts, and the BPE
    trained on them, equal those of the whole documents. The BPE trainer buffers 256 inputs at a time: pieces
    bound that buffer to 256 × `size` characters, not 256 whole reading blocks or records."""
    for text in documents:
        start = 0
        while len(text) - start > size:
            cut = _NEUTRAL_CUT.search(text, start + size)
            if cut is None:
                break
            yield text[start : cut.start()]
            start = cut.start()
        yield text[start:] if start else text


def train_bpe(
    documents: Iterable[str], vocab_size: int, out_dir: Path, min_frequency: int = 2
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE of `vocab_size` tokens (specials included) and save it to `out_dir`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(bpe_pieces(documents), trainer=trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=EOS,
        eos_token=EOS,
        pad_token=PAD,
        mask_token=MASK,
        unk_token=UNK,
    )
    with atomic_dir(out_dir) as staging:
        wrapped.save_pretrained(staging)
    return load_tokenizer(out_dir)


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerFast:
    """Load a tokenizer folder; it must define an end-of-text (eos or sep) token for packing."""
    path = Path(path)
    if not path.is_dir():
        raise KinheritError(f"tokenizer folder {path} not found")
    try:
        tokenizer = open_tokenizer(path)
    except (OSError, ValueError) as err:
        raise KinheritError(f"{path} is not a Hugging Face tokenizer folder ({str(err).splitlines()[0]})") from None
    if separator_id(tokenizer) is None:
        raise KinheritError(f"tokenizer {path} has no eos or sep token to separate documents")
    return tokenizer


def separator_id(tokenizer: PreTrainedTokenizerFast) -> int | None:
    """The token placed between packed documents: eos for causal tokenizers, else sep."""
    return tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
