"""The registry of cross-tokenizer methods (`teacher.cross_tokenizer`): one record per method, registered in
the method's own file with `register_method`; config validation, `--help-config`, `cache-teacher
--cross-tokenizer` and the cache's checks all read it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from torch import Tensor

from kinherit.registry import Registry

if TYPE_CHECKING:
    from kinherit.kd.cross_tokenizer.targets import Targets

MethodLoss = Callable[[Tensor, Tensor, "Targets", float], Tensor]
"""(student logits (B, T, V), student input_ids (B, T), the teacher's `Targets`, τ) → the KD term (a scalar)."""
BoundaryTargets = Literal["restricted", "bucketed"]


@dataclass(frozen=True)
class Method:
    name: str
    loss: MethodLoss
    boundary_targets: BoundaryTargets | None
    """The teacher's next-token targets at common boundaries that `loss` reads: `restricted` (the shared
    vocabulary, renormalised), `bucketed` (summed into longest-shared-prefix buckets), or None (it reads only
    the aligned spans' log-likelihoods, which every cross-tokenizer cache stores)."""

    @property
    def bucketed(self) -> bool:
        return self.boundary_targets == "bucketed"

    @property
    def cached_targets(self) -> BoundaryTargets:
        """The boundary targets a cache built for this method stores."""
        return self.boundary_targets or "restricted"

    def reads(self, stored: str) -> bool:
        """Whether a cache holding `stored` boundary targets serves this method."""
        return self.boundary_targets in (None, stored)


METHODS: Registry[Method] = Registry("cross-tokenizer method")


def register_method(
    name: str, boundary_targets: BoundaryTargets | None, reference: str
) -> Callable[[MethodLoss], MethodLoss]:
    """Register `loss` as method `name` (see `Method`); `reference` is the paper it comes from."""

    def decorator(loss: MethodLoss) -> MethodLoss:
        METHODS.add(name, Method(name, loss, boundary_targets), reference)
        return loss

    return decorator
