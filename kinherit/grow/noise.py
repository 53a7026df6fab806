"""Symmetry-breaking noise: an explicit additive term that cancels on the inputs it multiplies.

For a consumer axis with unit map `index`, noise E is projected so that, for every source unit i,
the noise on its copies sums to zero: sum_{j: index[j]=i} E[:, j] = 0. Copies see the same input
x_i, so (W'+E) x' = W' x'. Units copied once get no noise; dead (zero-padded) units keep their
noise, which multiplies their zero input. The term depends only on (seed, key, shape, std), never on
the weights, so growth stays `grow(W) = G(W) + E` with G linear. Per-head interleaved axes (`/head`) are
producer axes only, so the consumer axis noise goes on is always a plain concatenation of segments.
"""

from __future__ import annotations

import zlib

import torch

from kinherit.arch.spec import TensorSpec
from kinherit.grow.maps import UnitMap

DEFAULT_NOISE_DB = 0.0
"""Default SNR of the symmetry-breaking noise (see README, "Symmetry breaking", for the sweep behind it)."""


def noise_std(x: torch.Tensor, snr_db: float) -> float:
    """Noise standard deviation for a signal-to-noise ratio of `snr_db` against x's std."""
    return float(x.float().std()) * 10.0 ** (-snr_db / 20.0) if x.numel() > 1 else 0.0


def consumer_axis(spec: TensorSpec, maps: dict[str, UnitMap]) -> int | None:
    """The axis noise goes on: the `in` axis, if any of its segments grows."""
    for dim, axis in enumerate(spec.axes):
        if axis.kind == "in" and not all(maps[s].is_identity for s in axis.spaces):
            return dim
    return None


CHUNK_ROWS = 4096
"""Rows projected at a time: the projection's temporaries stay a few MiB whatever the tensor's size."""


def noise_term(key: str, shape: tuple[int, ...], dim: int, spec: TensorSpec, maps: dict[str, UnitMap],
               std: float, seed: int) -> torch.Tensor:
    """The projected noise for target tensor `key` (grown shape `shape`, consumer axis `dim`)."""
    gen = torch.Generator().manual_seed((seed * 1_000_003 + zlib.crc32(key.encode())) % (2**63))
    noise = torch.randn(shape, generator=gen).mul_(std)
    moved = noise.movedim(dim, -1)  # (..., C) view with C the fused consumer axis
    offset = 0
    for space in spec.axes[dim].spaces:
        m = maps[space]
        _cancel_over_copies(moved[..., offset : offset + m.new], m)
        offset += m.new
    return noise


def _cancel_over_copies(block: torch.Tensor, m: UnitMap) -> None:
    """In place on the view `block` (..., new): subtract from the noise of every live copy the mean over the
    copies of its source unit, so that the copies' noise sums to zero."""
    if block.dim() > 2:
        for sub in block:  # views, whatever the strides
            _cancel_over_copies(sub, m)
        return
    rows = block if block.dim() == 2 else block.unsqueeze(0)
    live_index = m.index[m.live]
    for start in range(0, rows.shape[0], CHUNK_ROWS):
        chunk = rows[start : start + CHUNK_ROWS]
        sums = torch.zeros(chunk.shape[0], m.old).index_add_(-1, live_index, chunk[:, m.live])
        chunk[:, m.live] -= (sums / m.count.float())[:, live_index]
