"""The options of one growth, in one frozen model shared by `kinherit grow`, `grow(model, ...)`, `grow_folder`,
`make_plan`, the demo and growth stages of a training config.

A leaf: it imports the operator registries (`width`, `depth`: no torch) and nothing from `kinherit.config`, so
the config can embed it. Unknown keys and unknown operator names are errors with a did-you-mean; everything that
needs the source model (a target smaller than the source, a non-integer multiple for `clone`) is checked by
`plan.make_plan`.
"""

from __future__ import annotations

import difflib
import math
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from kinherit.errors import KinheritError
from kinherit.grow.depth import DEPTH_OPERATORS
from kinherit.grow.width import WIDTH_OPERATORS
from kinherit.registry import known

DEFAULT_NOISE_DB = 0.0
"""Default SNR of the symmetry-breaking noise (see docs/results.md, "Symmetry breaking", for the sweep behind it)."""
ROUTER_INITS = ("zero", "random", "orthogonal")
DEFAULT_ROUTER = "random"
"""Default router init of an upcycled mixture of experts (docs/results.md, "Dense → mixture of experts", for the
measurement)."""
UPCYCLING = ("experts_per_token", "router", "router_std", "expert_noise_db", "drop_upcycling")
"""The options that only mean something with `num_experts` (they set up the upcycling into experts)."""


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


class GrowthOptions(BaseModel):
    """Target sizes (None: derived from the source, see `plan.target_shape`, which also refuses sizes smaller than
    the source's), operators, symmetry-breaking noise, seed, and the optional upcycling into a mixture of experts."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    hidden_size: int | None = None
    """Target hidden size (default: the source's)."""
    intermediate_size: int | None = None
    """Target FFN size (default: keeps the ratio to hidden)."""
    num_heads: int | None = None
    """Target attention heads (default: hidden / head_dim)."""
    num_kv_heads: int | None = None
    """Target key/value heads (default: keeps the GQA group size)."""
    num_layers: int | None = None
    """Target number of layers (default: the source's)."""
    width: Annotated[str, known(WIDTH_OPERATORS)] = "clone"
    """Width operator (`kinherit grow --help` lists them with their papers)."""
    depth: Annotated[str, known(DEPTH_OPERATORS)] = "identity"
    """Depth operator."""
    noise_db: float | None = DEFAULT_NOISE_DB
    """Symmetry-breaking noise at this SNR in dB (it cancels exactly); None turns it off, and duplicated units then
    stay identical forever."""
    seed: int = 0
    """Seed of the random unit maps, the noise, drawn units and the router."""
    num_experts: int | None = None
    """Upcycle the grown dense model into this many experts per layer (at least 2)."""
    experts_per_token: int | None = None
    """Experts each token is routed to (default min(2, num_experts))."""
    router: Annotated[str, known(ROUTER_INITS, "router init")] = DEFAULT_ROUTER
    """Router init: zero, random or orthogonal (any is exact: the selected weights are renormalised)."""
    router_std: float | None = None
    """Std of a random router's entries (orthogonal: the same row norm); default the config's initializer_range."""
    expert_noise_db: float | None = None
    """Independent noise on every expert copy at this SNR in dB (not exact)."""
    drop_upcycling: float = 0.0
    """Drop-Upcycling: re-initialise this share of every expert's FFN units (not exact)."""

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in data:
                if key not in cls.model_fields:
                    close = difflib.get_close_matches(str(key), list(cls.model_fields), n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    raise ValueError(f"unknown growth option {key!r}{hint}")
        return data

    @field_validator("noise_db", "expert_noise_db")
    @classmethod
    def _finite(cls, value: float | None, info) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError(f"{_flag(info.field_name)} must be a number, got {value!r}")
        return value

    @model_validator(mode="after")
    def _upcycling(self) -> GrowthOptions:
        if self.num_experts is None:
            if any(getattr(self, key) != GrowthOptions.model_fields[key].default for key in UPCYCLING):
                raise ValueError(
                    ", ".join(map(_flag, UPCYCLING[:-1])) + f" and {_flag(UPCYCLING[-1])} need "
                    "--num-experts (they set up the upcycling into experts)"
                )
            return self
        if self.num_experts < 2:
            raise ValueError(f"--num-experts must be at least 2, got {self.num_experts}")
        if not 1 <= self.top_k <= self.num_experts:
            raise ValueError(
                f"--experts-per-token must be between 1 and --num-experts {self.num_experts}, "
                f"got {self.experts_per_token}"
            )
        if not 0.0 <= self.drop_upcycling < 1.0:
            raise ValueError(f"--drop-upcycling must be in [0, 1), got {self.drop_upcycling}")
        if self.router != "zero" and self.router_std is not None and not self.router_std > 0:
            raise ValueError(f"the router std must be positive, got {self.router_std}")
        return self

    @property
    def top_k(self) -> int:
        """Experts per token, with its default min(2, num_experts)."""
        return self.experts_per_token if self.experts_per_token is not None else min(2, self.num_experts or 2)

    @property
    def sizes(self) -> dict[str, int | None]:
        """The target sizes, as `plan.target_shape` takes them."""
        return {
            k: getattr(self, k) for k in ("hidden_size", "intermediate_size", "num_heads", "num_kv_heads", "num_layers")
        }

    @classmethod
    def of(cls, options: GrowthOptions | dict[str, Any] | None = None, **kwargs: Any) -> GrowthOptions:
        """`options` (a GrowthOptions or a dict), updated by `kwargs`, validated; a bad option is a one-line
        KinheritError naming it."""
        if isinstance(options, GrowthOptions) and not kwargs:
            return options
        data = {
            **(options.model_dump(exclude_defaults=True) if isinstance(options, GrowthOptions) else options or {}),
            **kwargs,
        }
        try:
            return cls(**data)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(map(str, first["loc"]))
            message = str(first["msg"]).removeprefix("Value error, ")
            raise KinheritError(f"growth option {where}: {message}" if where else message) from None
