"""safetensors one tensor at a time: read any tensor of a model folder (one file or the shards of an index)
without loading the rest, and write a model folder shard by shard without holding a shard in memory.

The format (https://github.com/huggingface/safetensors): 8 bytes little-endian N, an N-byte JSON header
{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}} padded with spaces, then the data
(offsets relative to the end of the header). Reads use plain `readinto` (no mmap, whose touched pages would
count in the process's resident memory); a written tensor goes straight to the shard's data file, and the
header is put in front of it when the shard is closed (a chunked copy), so memory holds one tensor at a time.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch

from kinherit.errors import KinheritError
from kinherit.io import write_json

DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
NAMES = {dtype: name for name, dtype in DTYPES.items()}
INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"
COPY_CHUNK = 64 << 20  # bytes per read when a shard's data is copied behind its header


def read_header(path: Path) -> tuple[int, dict]:
    """(start of the data, {name: entry}) of one safetensors file."""
    with open(path, "rb") as f:
        size = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(size))
    header.pop("__metadata__", None)
    return 8 + size, header


class FolderTensors(Mapping[str, torch.Tensor]):
    """The tensors of a model folder's safetensors weights, each read from disk when it is looked up (a fresh
    tensor every time; nothing is cached). `upcast` returns floating-point tensors as fp32. `aliases` maps names
    the folder does not store to the stored name of the same (tied) parameter (`offload.stored_names`)."""

    def __init__(
        self, folder: str | Path, role: str = "", upcast: bool = False, aliases: Mapping[str, str] | None = None
    ):
        folder = Path(folder)
        if (folder / SINGLE).is_file():
            files = {SINGLE}
        elif (folder / INDEX).is_file():
            files = set(json.loads((folder / INDEX).read_text())["weight_map"].values())
        else:
            raise KinheritError(
                f"{role + ' ' if role else ''}{folder} has no safetensors weights ({SINGLE} or {INDEX}); "
                "streaming reads safetensors only (re-save the model with save_pretrained)"
            )
        self.upcast = upcast
        self.entries: dict[str, tuple[Path, int, dict]] = {}
        for name in sorted(files):
            start, header = read_header(folder / name)
            for key, entry in header.items():
                self.entries[key] = (folder / name, start, entry)
        for alias, key in (aliases or {}).items():
            if alias not in self.entries and key in self.entries:
                self.entries[alias] = self.entries[key]

    def shape(self, key: str) -> tuple[int, ...]:
        return tuple(self.entries[key][2]["shape"])

    def dtype(self, key: str) -> torch.dtype:
        return DTYPES[self.entries[key][2]["dtype"]]

    def __getitem__(self, key: str) -> torch.Tensor:
        path, start, entry = self.entries[key]
        begin, end = entry["data_offsets"]
        dtype, shape = DTYPES[entry["dtype"]], tuple(entry["shape"])
        if end == begin:
            x = torch.empty(shape, dtype=dtype)
        else:
            data = bytearray(end - begin)
            with open(path, "rb") as f:
                f.seek(start + begin)
                f.readinto(data)
            x = torch.frombuffer(data, dtype=dtype).reshape(shape)
        return x.float() if self.upcast and x.is_floating_point() else x

    def __contains__(self, key: object) -> bool:  # without reading the tensor
        return key in self.entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)


class ShardWriter:
    """Write tensors into `folder` as `model.safetensors` (one shard) or `model-XXXXX-of-YYYYY.safetensors` plus
    `model.safetensors.index.json`, starting a new shard when the next tensor would pass `max_shard_bytes`."""

    def __init__(self, folder: Path, max_shard_bytes: int):
        self.folder, self.max_bytes = folder, max_shard_bytes
        self.shards: list[dict[str, dict]] = []  # the header entries of every shard, in order
        self.data: Path | None = None
        self.size = 0  # bytes in the open shard

    def add(self, key: str, x: torch.Tensor) -> None:
        nbytes = x.numel() * x.element_size()
        if self.data is None or (self.size and self.size + nbytes > self.max_bytes):
            self._close()
            self.shards.append({})
            self.data, self.size = self.folder / f".shard-{len(self.shards)}.data", 0
        self.shards[-1][key] = {
            "dtype": NAMES[x.dtype],
            "shape": list(x.shape),
            "data_offsets": [self.size, self.size + nbytes],
        }
        with open(self.data, "ab") as f:
            f.write(x.detach().contiguous().reshape(-1).view(torch.uint8).numpy().data)
        self.size += nbytes

    def finish(self) -> list[str]:
        """Close the last shard, name the shards, write the index when there are several; the file names."""
        self._close()
        count = len(self.shards)
        names = [SINGLE] if count == 1 else [f"model-{i:05d}-of-{count:05d}.safetensors" for i in range(1, count + 1)]
        for i, name in enumerate(names, 1):
            (self.folder / f".shard-{i}.safetensors").rename(self.folder / name)
        if count > 1:
            total = sum(e["data_offsets"][1] - e["data_offsets"][0] for shard in self.shards for e in shard.values())
            write_json(
                self.folder / INDEX,
                {
                    "metadata": {"total_size": total},
                    "weight_map": {k: n for n, shard in zip(names, self.shards) for k in shard},
                },
            )
        return names

    def _close(self) -> None:
        """Header, then the data file's bytes, into `.shard-i.safetensors`; the data file is removed."""
        if self.data is None:
            return
        header = json.dumps({"__metadata__": {"format": "pt"}, **self.shards[-1]}, separators=(",", ":")).encode()
        header += b" " * (-len(header) % 8)  # the data starts 8-byte aligned
        with open(self.folder / f".shard-{len(self.shards)}.safetensors", "wb") as out, open(self.data, "rb") as data:
            out.write(len(header).to_bytes(8, "little"))
            out.write(header)
            shutil.copyfileobj(data, out, COPY_CHUNK)
        self.data.unlink()
        self.data = None
