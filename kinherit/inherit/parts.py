"""A cache written by several processes (`torchrun` / `accelerate launch`): each writes its part, the main one joins.

The work is a list of batches split into contiguous runs, one per process (`PartialState.split_between_processes`),
so joining the parts in process order gives the rows in the order one process would have written them, and each
batch is the same batch as in a 1-process build: the files are identical byte for byte.

Every process appends its rows of each file to `part-<process>-<file>` in a staging folder the main process owns
(`shared_staging`); once all are done, the main process joins them (`join_parts`, deleting each part once copied,
so the disk holds the cache about once) and the staging folder is renamed into place.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np
from accelerate import PartialState
from accelerate.utils import broadcast_object_list

from kinherit.io import atomic_dir


@contextmanager
def shared_staging(target: Path, state: PartialState) -> Iterator[Path]:
    """`atomic_dir(target)` for every process: the main process owns the staging folder and renames it into place
    when the block ends; every process gets its path and returns once the rename is done."""
    with atomic_dir(target) if state.is_main_process else nullcontext() as staging:
        shared = [staging]
        broadcast_object_list(shared)
        yield shared[0]
    state.wait_for_everyone()


def _part(staging: Path, process: int, name: str) -> Path:
    return staging / f"part-{process:05d}-{name}"


class PartWriter:
    """Appends this process's rows to its part of each file, in the order they come."""

    def __init__(self, staging: Path, process: int, names: tuple[str, ...]):
        self.handles = {name: _part(staging, process, name).open("wb") for name in names}

    def write(self, name: str, array: np.ndarray) -> None:
        self.handles[name].write(np.ascontiguousarray(array).tobytes())

    def close(self) -> None:
        for handle in self.handles.values():
            handle.close()


def join_parts(staging: Path, processes: int, names: tuple[str, ...]) -> None:
    """Main process, after every process closed its writer: each file is its parts in process order."""
    for name in names:
        with (staging / name).open("wb") as out:
            for process in range(processes):
                part = _part(staging, process, name)
                with part.open("rb") as handle:
                    shutil.copyfileobj(handle, out, 1 << 24)
                part.unlink()
