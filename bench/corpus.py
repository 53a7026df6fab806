"""The bench corpus: ≈ 95 MB of English text that Debian packages install, for budgets of ≥ 100 tokens per parameter.

    python -m bench.corpus [--out runs/corpus]        # writes runs/corpus/bench-corpus/PART.txt

Nothing is downloaded: every part is a file an OS package put on this machine, read in this fixed order:

| part | package | text |
|---|---|---|
| gcide | dict-gcide | GNU Collaborative International Dictionary of English (Webster 1913 + WordNet glosses) |
| wordnet | dict-wn | WordNet 3.0 definitions and examples |
| foldoc | dict-foldoc | Free On-line Dictionary of Computing |
| jargon | dict-jargon | The Jargon File |
| devil | dict-devil | Ambrose Bierce, The Devil's Dictionary |
| python-docs | python3-doc | the Python documentation's reStructuredText sources |
| vim-docs | vim-runtime | Vim's help files |

The dictd databases (`/usr/share/dictd/NAME.dict.dz`) are dictzip files, which gzip reads; their lines lose the
indentation that only lays entries out. Each part is one file of the corpus folder, so that the `contiguous` split
holds out a window of every part: the validation text samples every kind of text, not one. A missing part is
named with the one `apt-get install` line that adds it (exit status 2): the corpus is all parts or nothing, so that
its size, and a bench's tokens per parameter without repeats, are the same on every machine.
"""

from __future__ import annotations

import argparse
import glob
import gzip
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kinherit.io import atomic_dir

NAME = "bench-corpus"
"""The corpus folder `--out` holds: one PART.txt per part."""


@dataclass(frozen=True)
class Part:
    """One part of the corpus: the files `pattern` globs under one folder `root` globs (the last one, links resolved:
    one Python or Vim version even where several are installed), installed by `package`."""

    name: str
    package: str
    root: str
    pattern: str

    def files(self) -> list[Path]:
        roots = sorted({Path(p).resolve() for p in glob.glob(self.root)})
        return sorted(p for p in roots[-1].glob(self.pattern) if p.is_file()) if roots else []

    def lines(self) -> Iterator[str]:
        """The part's text, line by line (dictd databases unindented)."""
        for path in self.files():
            if path.suffix == ".dz":
                with gzip.open(path, "rt", encoding="utf-8", errors="replace") as handle:
                    yield from (line.strip() + "\n" for line in handle)
            else:
                yield from path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
            yield "\n"


PARTS = [
    *(
        Part(name, f"dict-{package}", "/usr/share/dictd", f"{package}.dict.dz")
        for name, package in (
            ("gcide", "gcide"),
            ("wordnet", "wn"),
            ("foldoc", "foldoc"),
            ("jargon", "jargon"),
            ("devil", "devil"),
        )
    ),
    Part("python-docs", "python3-doc", "/usr/share/doc/python3.[0-9]*/html/_sources", "**/*.txt"),
    Part("vim-docs", "vim-runtime", "/usr/share/vim/vim[0-9]*/doc", "*.txt"),
]


def missing(parts: list[Part]) -> list[Part]:
    """The parts with no file installed."""
    return [part for part in parts if not part.files()]


def write(out: Path, parts: list[Part]) -> dict[str, int]:
    """Write each part's text to `out`/NAME.txt (the folder replaced atomically); returns each part's bytes."""
    sizes: dict[str, int] = {}
    with atomic_dir(out) as staging:
        for part in parts:
            with open(staging / f"{part.name}.txt", "wb") as handle:
                sizes[part.name] = sum(handle.write(line.encode()) for line in part.lines())
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/corpus", help=f"where the corpus folder ({NAME}) goes")
    args = parser.parse_args(argv)
    absent = missing(PARTS)
    if absent:
        packages = " ".join(dict.fromkeys(part.package for part in absent))
        print(
            f"missing: {', '.join(part.name for part in absent)}; install with: apt-get install -y {packages}",
            file=sys.stderr,
        )
        return 2
    target = Path(args.out) / NAME
    sizes = write(target, PARTS)
    for name, size in sizes.items():
        print(f"{name:12} {size / 1e6:7.1f} MB")
    print(f"{'total':12} {sum(sizes.values()) / 1e6:7.1f} MB → {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
