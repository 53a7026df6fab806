"""The reuse law: what a method saves against scratch, as fitted by `bench/fit_reuse_law.py` into reuse_law.json.

Per method m and quantity y (the FLOPs saving 1 − C_m / C_scratch(L_m), or the loss difference L_m − L_scratch at
equal tokens), a least-squares line in the logs of the setting, on every measured seed:

    y = b₀ + Σ_j b_j·(x_j − c_j),   x ⊂ (log₁₀ N, log₁₀ τ, log₁₀ τ_base)

N the target's non-embedding parameters, τ = D / N its tokens per parameter, τ_base the reused model's own tokens
per its parameters. A slope is fitted only where its variable varies and there are more distinct settings than
coefficients (one or two settings: a constant with its seed spread). The interval is the fit's prediction
interval: ŷ ± t_dof · s · √(1 + x̃ᵀ(XᵀX)⁻¹x̃), s² the residual variance, dof = points − coefficients.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

from kinherit.errors import KinheritError

VARIABLES = {"n": "N", "tau": "τ", "base_tau": "τ_base"}
"""The setting's variables (keys of reuse_law.json's `columns` and `range`) and how a row names them."""

LAW_FILE = "reuse_law.json"


@dataclass(frozen=True)
class Fit:
    """One fitted quantity of one method (see the module docstring)."""

    columns: tuple[str, ...]
    center: tuple[float, ...]
    coef: tuple[float, ...]
    xtx_inv: tuple[tuple[float, ...], ...]
    residual_var: float | None
    t: float
    range: dict[str, tuple[float, float]]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Fit:
        return cls(
            tuple(data["columns"]),
            tuple(data["center"]),
            tuple(data["coef"]),
            tuple(tuple(row) for row in data["xtx_inv"]),
            data["residual_var"],
            data["t"],
            {key: (low, high) for key, (low, high) in data["range"].items()},
        )

    def predict(self, setting: dict[str, float]) -> tuple[float, float, float]:
        """(low, mid, high): the prediction and its interval at `setting` (N, τ, τ_base; logs taken here); an
        unbounded interval where the fit has no residual degree of freedom."""
        x = [1.0, *(math.log10(setting[c]) - center for c, center in zip(self.columns, self.center))]
        mid = sum(b * v for b, v in zip(self.coef, x))
        if self.residual_var is None:
            return -math.inf, mid, math.inf
        leverage = sum(x[i] * self.xtx_inv[i][j] * x[j] for i in range(len(x)) for j in range(len(x)))
        half = self.t * math.sqrt(self.residual_var * (1.0 + leverage))
        return mid - half, mid, mid + half

    def outside(self, setting: dict[str, float | None]) -> list[str]:
        """How far `setting` lies outside the measured range, one phrase per variable: `N 1000× above the largest
        measured (2.6e+05)`; empty inside it."""
        phrases = []
        for key, (low, high) in self.range.items():
            value = setting.get(key)
            if value is None:
                continue
            if value > high * (1 + 1e-9):
                phrases.append(f"{VARIABLES[key]} {value / high:.3g}× above the largest measured ({high:.3g})")
            elif value < low * (1 - 1e-9):
                phrases.append(f"{VARIABLES[key]} {low / value:.3g}× below the smallest measured ({low:.3g})")
        return phrases


@dataclass(frozen=True)
class MethodLaw:
    """A method's fits (None: not measured) and where its points come from."""

    method: str
    saving: Fit | None
    loss_delta: Fit | None
    sources: tuple[str, ...]

    def outside(self, setting: dict[str, float | None]) -> list[str]:
        """`Fit.outside` against the union of both quantities' ranges (each may have been measured at other
        settings)."""
        fits = [f for f in (self.saving, self.loss_delta) if f is not None]
        keys = dict.fromkeys(k for f in fits for k in f.range)
        union = {
            k: (min(f.range[k][0] for f in fits if k in f.range), max(f.range[k][1] for f in fits if k in f.range))
            for k in keys
        }
        return replace(fits[0], range=union).outside(setting) if fits else []


@dataclass(frozen=True)
class ReuseLaw:
    """reuse_law.json: every method's law, the interval's coverage and the command that regenerates the file."""

    methods: dict[str, MethodLaw]
    coverage: float
    regenerate: str
    path: str

    def get(self, method: str) -> MethodLaw | None:
        return self.methods.get(method)


def load_law(path: str | Path | None = None) -> ReuseLaw:
    """The law at `path`, default the one shipped in the package (kinherit/plan/reuse_law.json)."""
    try:
        if path is None:
            text, where = resources.files("kinherit.plan").joinpath(LAW_FILE).read_text(), f"kinherit/plan/{LAW_FILE}"
        else:
            text, where = Path(path).read_text(), str(path)
        data = json.loads(text)
    except (OSError, json.JSONDecodeError) as err:
        raise KinheritError(f"cannot read the reuse law {path or LAW_FILE}: {err}") from None
    methods = {
        name: MethodLaw(
            name,
            *(Fit.from_json(m[q]) if m.get(q) else None for q in ("saving", "loss_delta")),
            tuple(m.get("sources", [])),
        )
        for name, m in data["methods"].items()
    }
    return ReuseLaw(methods, data["coverage"], data["regenerate"], where)
