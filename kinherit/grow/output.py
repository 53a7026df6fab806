"""OUT_DIR of `kinherit grow`: refuse a folder with files in it unless asked to overwrite, and then replace
only what kinherit writes there, keeping every other file.

The replacement is one atomic swap of folders: the new outputs are staged in a sibling folder, the files
kinherit did not write are hard-linked (copied where links are impossible) into it, and the staged folder
replaces OUT_DIR in two renames (`io.replace_dir`). Until the swap OUT_DIR is the old folder, after it the
new one, and a foreign file exists in both until the old folder is removed: no crash loses one.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kinherit.errors import KinheritError
from kinherit.hf_folder import TOKENIZER_FILES
from kinherit.io import replace_dir

OWN_OUTPUTS = (
    "config.json",
    "generation_config.json",
    "growth.json",
    "model.safetensors",
    "model.safetensors.index.json",
    "model-*-of-*.safetensors",
    *TOKENIZER_FILES,
)
"""Names (glob patterns) of the files `kinherit grow` writes: the only ones `overwrite` replaces or removes."""


def is_own_output(name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in OWN_OUTPUTS)


def check_out_dir(out: Path, overwrite: bool) -> None:
    """Refuse an OUT_DIR that is a file, or a folder with entries in it unless `overwrite` (checked first)."""
    if out.exists() and not out.is_dir():
        raise KinheritError(f"OUT_DIR {out} is a file, not a folder")
    entries = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if entries and not overwrite:
        shown = ", ".join(entries[:3]) + (f" and {len(entries) - 3} more" if len(entries) > 3 else "")
        raise KinheritError(
            f"OUT_DIR {out} is not empty (it holds {shown}); pass --overwrite "
            "(Python: overwrite=True) to replace kinherit's outputs in it (other files are kept), "
            "or choose a new folder"
        )


@contextmanager
def staged_outputs(out: Path) -> Iterator[Path]:
    """Yield an empty staging folder for the outputs; on success it replaces `out`, keeping every entry of an
    existing `out` that is not a kinherit output (`OWN_OUTPUTS`). On an error `out` is untouched."""
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = out.with_name(f".tmp-{out.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    stage.mkdir()
    try:
        yield stage
        for entry in sorted(out.iterdir()) if out.is_dir() else ():
            if not is_own_output(entry.name) and not (stage / entry.name).exists():
                _link_tree(entry, stage / entry.name)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    replace_dir(stage, out)


def _link_tree(src: Path, dst: Path) -> None:
    """Hard-link `src` (a file, a symlink, or a folder recursively) to `dst`; copy where linking fails."""
    if src.is_dir() and not src.is_symlink():
        dst.mkdir()
        for child in src.iterdir():
            _link_tree(child, dst / child.name)
        shutil.copystat(src, dst)
        return
    try:
        os.link(src, dst, follow_symlinks=False)
    except OSError:
        shutil.copy2(src, dst, follow_symlinks=False)
