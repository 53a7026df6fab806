"""Symmetry-breaking noise: an explicit additive term that cancels on the inputs it multiplies.

For a consumer axis with unit map `index`, noise E is projected so that, for every source unit i,
the noise on its copies sums to zero: sum_{j: index[j]=i} E[:, j] = 0. Copies see the same input
x_i, so (W'+E) x' = W' x'. Units copied once get no noise, and neither do drawn units (index −1):
their out-going columns stay zero (`drawn_term`). The term depends only on (seed, key, shape, std), never on
the weights, so growth stays `grow(W) = G(W) + E` with G linear. Per-head interleaved axes (`/head`) are
producer axes only, so the consumer axis noise goes on is always a plain concatenation of segments.
"""

from __future__ import annotations

import zlib

import torch

from kinherit.arch.spec import TensorSpec
from kinherit.grow.interleave import to_heads
from kinherit.grow.maps import UnitMap


def seeded_generator(seed: int, key: str) -> torch.Generator:
    """The generator of every seeded random term of a growth: one stream per (seed, tensor key, purpose),
    seeded with (seed · 1000003 + crc32(key)) mod 2^63, so a term never depends on the order tensors are grown in."""
    return torch.Generator().manual_seed((seed * 1_000_003 + zlib.crc32(key.encode())) % (2**63))


def noise_std(x: torch.Tensor, snr_db: float) -> float:
    """Noise standard deviation for a signal-to-noise ratio of `snr_db` against x's std."""
    return float(x.float().std()) * 10.0 ** (-snr_db / 20.0) if x.numel() > 1 else 0.0


def consumer_axis(spec: TensorSpec, maps: dict[str, UnitMap]) -> int | None:
    """The axis noise goes on: the `in` axis, if any of its segments grows."""
    for dim, axis in enumerate(spec.axes):
        if axis.kind == "in" and not all(maps[s].is_identity for s in axis.spaces):
            return dim
    return None


ROWS_PER_BLOCK = 4096
"""Rows projected at a time: the projection's temporaries stay a few MiB whatever the tensor's size."""


def noise_term(
    key: str, shape: tuple[int, ...], dim: int, spec: TensorSpec, maps: dict[str, UnitMap], std: float, seed: int
) -> torch.Tensor:
    """The projected noise for target tensor `key` (grown shape `shape`, consumer axis `dim`)."""
    noise = torch.randn(shape, generator=seeded_generator(seed, key)).mul_(std)
    moved = noise.movedim(dim, -1)  # (..., C) view with C the fused consumer axis
    offset = 0
    for space in spec.axes[dim].spaces:
        m = maps[space]
        _cancel_over_copies(moved[..., offset : offset + m.new], m)
        offset += m.new
    return noise


def _cancel_over_copies(block: torch.Tensor, m: UnitMap) -> None:
    """In place on the view `block` (..., new): subtract from the noise of every live copy the mean over the
    copies of its source unit, so that the copies' noise sums to zero; drawn units (index −1) get none."""
    if block.dim() > 2:
        for sub in block:  # views, whatever the strides
            _cancel_over_copies(sub, m)
        return
    rows = block if block.dim() == 2 else block.unsqueeze(0)
    live_index = m.index[m.live]
    for start in range(0, rows.shape[0], ROWS_PER_BLOCK):
        rows_block = rows[start : start + ROWS_PER_BLOCK]
        sums = torch.zeros(rows_block.shape[0], m.old).index_add_(-1, live_index, rows_block[:, m.live])
        rows_block[:, m.live] -= (sums / m.count.float())[:, live_index]
    if not bool(m.live.all()):
        rows[:, ~m.live] = 0.0


def unit_mask(spec: TensorSpec, maps: dict[str, UnitMap], kinds: tuple[str, ...], units: str) -> torch.Tensor:
    """Boolean mask, broadcastable to the grown tensor: True where every axis of a kind in `kinds` sits at a
    unit whose `units` flag (a (new,) bool attribute of its map: `live`, `drawn`, `repeat`) is set.
    Interleaved axes are laid out per head like the tensor."""
    mask = torch.ones([1] * len(spec.axes), dtype=torch.bool)
    for dim, axis in enumerate(spec.axes):
        if axis.kind in kinds:
            picked = torch.cat([getattr(maps[s], units) for s in axis.spaces])  # (new,) concatenated segments
            if axis.interleaved:
                picked = to_heads(picked, 0, axis, maps, grown=True)
            shape = [1] * len(spec.axes)
            shape[dim] = picked.numel()
            mask = mask & picked.view(shape)
    return mask


def drawn_term(
    key: str, shape: tuple[int, ...], spec: TensorSpec, maps: dict[str, UnitMap], mean: float, std: float, seed: int
) -> torch.Tensor:
    """The in-coming weights of the drawn units (index −1, `--width zero`): N(mean, std²) entries (the
    source tensor's statistics) on their producer rows and norm entries, read from live inputs only, zero
    elsewhere. Their out-going (consumer) columns stay zero, so the function is kept while every drawn unit
    computes a non-zero activation and gets gradients (zero rows *and* columns would stay zero forever:
    silu(0)·0 = 0). Gesmundo & Maile 2023, https://arxiv.org/abs/2308.06103."""
    where = unit_mask(spec, maps, ("out", "norm"), "drawn") & unit_mask(spec, maps, ("in",), "live")
    values = torch.randn(shape, generator=seeded_generator(seed, key + ":drawn")).mul_(std).add_(mean)
    return values.mul_(where)
