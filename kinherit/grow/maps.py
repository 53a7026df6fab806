"""Unit maps: which source unit every grown unit copies.

A `UnitMap` over a space of `old` units has one entry per new unit: `index[j] = i` means new unit j
copies old unit i; `index[j] = -1` means new unit j is *drawn*: it copies nothing, its in-coming weights are
drawn at random and its out-going weights are zero (`noise.drawn_term`), so it adds nothing until trained.
With `count[i] = #{j : index[j] = i}`, a consumer weight reading the space gets
`W'[:, j] = W[:, index[j]] / count[index[j]]`, so `W' x' = W x` whenever `x'[j] = x[index[j]]`
(a drawn unit's column is zero, whatever its activation).
"""

from __future__ import annotations

import torch

from kinherit.errors import KinheritError


class UnitMap:
    """A new-unit -> old-unit index map with the derived per-unit tensors used by the operators."""

    def __init__(self, old: int, index: list[int], block: int = 1):
        assert all(-1 <= i < old for i in index), "unit map index out of range"
        self.old = old
        self.block = block  # channels per unit of the unit-level map this one expands (head_dim for heads)
        self.index_list = list(index)
        self.index = torch.tensor(index, dtype=torch.long)  # (new,)
        self.live = self.index >= 0  # (new,)
        self.count = torch.bincount(self.index[self.live], minlength=old)  # (old,)
        if bool((self.count == 0).any()):
            lost = torch.nonzero(self.count == 0).flatten().tolist()[:5]
            raise KinheritError(f"unit map drops source units {lost}: the grown model could not be exact")
        safe = self.index.clamp(min=0)
        self.gather_index = safe  # (new,) index_select-able
        self.inv_count = torch.where(self.live, 1.0 / self.count[safe].float(), torch.zeros(()))  # (new,)
        first = torch.zeros(len(index), dtype=torch.bool)
        seen: set[int] = set()
        for j, i in enumerate(index):
            if i >= 0 and i not in seen:
                seen.add(i)
                first[j] = True
        self.repeat = ~first & self.live  # (new,) copies that are not the first copy of their source unit
        self.drawn = ~self.live  # (new,) units that copy nothing (drawn at random, out-going weights zero)

    @property
    def new(self) -> int:
        return len(self.index_list)

    @property
    def is_identity(self) -> bool:
        return self.index_list == list(range(self.old))

    @property
    def uniform(self) -> bool:
        """Every source unit copied equally often and no drawn units: mean/variance/RMS are kept."""
        return bool(self.live.all()) and int(self.count.min()) == int(self.count.max())

    def per_channel(self, block: int) -> UnitMap:
        """Head-level map -> channel-level map (each head is `block` = head_dim channels)."""
        return UnitMap(
            self.old * block,
            [(-1 if i < 0 else i * block + d) for i in self.index_list for d in range(block)],
            block,
        )

    def gather(self, x: torch.Tensor, dim: int, divide: bool) -> torch.Tensor:
        """Grow axis `dim` of `x` (size old -> new); `divide` for consumer axes (fan-in / count)."""
        out = x.index_select(dim, self.gather_index)
        if divide or not bool(self.live.all()):
            weight = self.inv_count if divide else self.live.to(x.dtype)
            shape = [1] * x.dim()
            shape[dim] = self.new
            out.mul_(weight.to(x.dtype).view(shape))  # in place: no second copy of a big tensor
        return out

    def readback(self, x: torch.Tensor) -> torch.Tensor:
        """Inverse view on the last axis: mean over the copies of each source unit (drawn units ignored)."""
        live = self.index[self.live]
        out = torch.zeros(*x.shape[:-1], self.old, dtype=x.dtype)
        out.index_add_(-1, live, x[..., self.live])
        return out / self.count.to(x.dtype)
