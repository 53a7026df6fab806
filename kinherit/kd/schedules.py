"""α schedules of knowledge inheritance: the weight of the KD term at optimizer step t (0-based).

    L_t = (1 − α_t)·L_LM + α_t·τ²·KL(p_teacher(·/τ) ‖ p_student(·/τ))

Each schedule maps (t, α₀, T) → α_t, where T is the inheritance horizon (`teacher.steps`). A schedule that
`ends` is 0 for every t ≥ T and positive before (when α₀ > 0), so the teacher runs on exactly
min(step, T) of the first `step` steps and is released afterwards; registration checks that invariant.

A schedule may hold state (`ScheduleState`): it watches the student against the teacher during the run, may
scale α by what it saw and stop inheritance for good, and a checkpoint carries it. `auto` (`AutoStop`) is
one: linear in t, weighted by the teacher/student gap (on the validation split and the training batches), ending
as soon as the student no longer learns from the teacher. Registering a schedule is one `register_schedule`
(with `state=` for a stateful one).

`Alpha` is the one place α lives during a run: the registered schedule at (α₀, T), its state, the teacher's
step count and the state a checkpoint carries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from kinherit.registry import Registry

AUTO = "auto"
"""The stateful schedule `AutoStop` is registered as."""

AlphaFn = Callable[[int, float, int], float]


class ScheduleState(Protocol):
    """What a stateful schedule learned during a run. Its evidence is the (student, teacher) losses the run
    measures at every evaluation, on the validation split (`observe_validation`; the teacher's computed once,
    across tokenizers the mean NLL per aligned span of the same text), and on each training micro-batch the teacher
    ran on (`observe_batch`; same tokenizer, full teacher logits).

        α_t = 0                                   for t ≥ switch_step (inheritance stopped itself)
        w_t = schedule(t; α₀, T) · factor()       the KD weight of a micro-batch otherwise
    """

    switch_step: int | None
    """The step from which α is 0 for good; None while inheritance goes on."""

    def factor(self) -> float | torch.Tensor:
        """The multiplier of α_t (a float, or a 0-dim tensor on the batches' device)."""

    def observe_validation(self, step: int, student: float, teacher: float) -> None:
        """Validation losses of an evaluation after `step` optimizer steps."""

    def observe_batch(self, student: torch.Tensor, teacher: torch.Tensor) -> None:
        """LM losses (micro-batch means, detached) of a training micro-batch the teacher ran on, before its weight
        is read: the student's credited with the unigram baseline, the teacher's from its KD logits."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class Schedule:
    name: str
    alpha: AlphaFn
    ends: bool
    """α_t = 0 for t ≥ T (and > 0 before when α₀ > 0)."""
    state: Callable[[], ScheduleState] | None = None
    """A stateful schedule's fresh state, one per run (None: α_t depends on t alone). The run then measures the
    evidence it observes: the teacher's validation loss (so it needs the teacher model and evaluations)."""

    def teacher_steps(self, step: int, alpha0: float, horizon: int) -> int:
        """How many of the first `step` optimizer steps ran the teacher (α_t > 0)."""
        if alpha0 == 0:
            return 0
        return min(step, horizon) if self.ends else step


SCHEDULES: Registry[Schedule] = Registry("schedule")


def _check_ends(schedule: Schedule, horizon: int = 16) -> None:
    """A schedule is non-negative and ≤ α₀; one that `ends` is > 0 for t < T and 0 from T on (α₀ = 1)."""
    values = [schedule.alpha(t, 1.0, horizon) for t in range(3 * horizon)]
    if any(not 0.0 <= v <= 1.0 for v in values):
        raise ValueError(f"schedule {schedule.name!r}: α_t must lie in [0, α₀]")
    if schedule.ends and (min(values[:horizon]) <= 0.0 or max(values[horizon:]) != 0.0):
        raise ValueError(f"schedule {schedule.name!r} claims `ends` but is not > 0 before T and 0 from T on")


def register_schedule(
    name: str, ends: bool, reference: str, state: Callable[[], ScheduleState] | None = None
) -> Callable[[AlphaFn], AlphaFn]:
    """Register `fn` as schedule `name`, stateful with `state` (see `Schedule`); `reference` is the paper it
    comes from (printed by --help-config). `ends` is checked on `fn`, which a state only scales or cuts short."""

    def decorator(fn: AlphaFn) -> AlphaFn:
        schedule = Schedule(name, fn, ends, state)
        _check_ends(schedule)
        SCHEDULES.add(name, schedule, reference)
        return fn

    return decorator


@register_schedule(
    "linear",
    ends=True,
    reference="Qin et al. 2022, Knowledge Inheritance for Pre-trained Language Models, https://arxiv.org/abs/2105.13880",
)
def linear(t: int, alpha0: float, horizon: int) -> float:
    """α_t = α₀·max(1 − t/T, 0): the paper's default, from α₀ at step 0 down to 0 at step T."""
    return alpha0 * max(1.0 - t / horizon, 0.0)


@register_schedule(
    "heaviside",
    ends=True,
    reference="Rawat et al. 2024, A Little Help Goes a Long Way: Efficient LLM Training by Leveraging Small LMs (SALT), https://arxiv.org/abs/2410.18779",
)
def heaviside(t: int, alpha0: float, horizon: int) -> float:
    """α_t = α₀ for t < T, else 0: (with α₀ = 1) pure KD until T, then pure LM."""
    return alpha0 if t < horizon else 0.0


@register_schedule(
    "constant",
    ends=False,
    reference="Hinton, Vinyals & Dean 2015, Distilling the Knowledge in a Neural Network, https://arxiv.org/abs/1503.02531",
)
def constant(t: int, alpha0: float, horizon: int) -> float:
    """α_t = α₀ for every step (classic distillation); T is not used and the teacher runs throughout."""
    return alpha0


def resolve_horizon(steps: int | float, max_steps: int) -> int:
    """`teacher.steps` as an absolute step count: an int as is, a fraction f ∈ (0, 1] as round(f·max_steps) ≥ 1."""
    if isinstance(steps, float):
        return max(1, round(steps * max_steps))
    return steps


CAUGHT_UP = 1e-4
"""ε, in nats: `auto` releases the teacher once L_val(student) ≤ L_val(teacher) + ε (see `AutoStop`)."""

GAP_MARGIN = 1.0
"""m, in nats: the teacher/student LM-loss gap at and above which the KD term gets its full scheduled weight
(0.5 before issue 29; 1.0 chosen on one seed of the issue's weak teacher, see `AutoStop`)."""


BATCH_MEAN = 0.9
"""β: the running mean of `auto`'s batch gap weighs the newest micro-batch 1 − β (≈ the last 10 micro-batches)."""


def gap_weight(
    student_lm: torch.Tensor | float, teacher_lm: torch.Tensor | float, margin: float = GAP_MARGIN
) -> torch.Tensor:
    """g = clip((L(student) − L(teacher)) / m, 0, 1), detached: how much the teacher still has to teach."""
    return ((torch.as_tensor(student_lm).detach() - torch.as_tensor(teacher_lm).detach()) / margin).clamp(0.0, 1.0)


@dataclass
class AutoStop:
    """The state of schedule `auto`, inheritance that never outstays its use: the KD weight follows the
    teacher/student gap, and inheritance stops once the student has caught up.

    Two gaps, both with the student credited with the token frequencies (L_val(unigram), below):

        L     = min(L_val(student), L_val(unigram))              at every evaluation after `step` steps
        g_val = gap_weight(L, L_val(teacher))                    until the next evaluation (1 before the first)
        d_b   = min(L_LM(student; b), L_val(unigram)) − L_LM(teacher; b)   on each training micro-batch b the
                                                                 teacher runs on, before its weight is read
        D_b   = β·D_{b−1} + (1 − β)·d_b,   D = d_b at the first     (β = BATCH_MEAN, 0.9)
        g     = min(g_val, clip(D_b / m, 0, 1)²)                 the KD weight factor of micro-batch b (m = GAP_MARGIN)
        s     = the first evaluated step with  L ≤ L_val(teacher) + ε      (ε = CAUGHT_UP, 1e-4 nats)
        α_t   = α₀·max(1 − t/T, 0) · g   for t < s,   α_t = 0 for every t ≥ s (the teacher is released)

    The release is decided on data neither model trained on: L_val(teacher) is the teacher's loss on the
    validation split (computed once; a teacher with another tokenizer has no per-token loss comparable with the
    student's, so there both are the mean NLL per aligned span of the validation text, `kinherit.inherit.held_out`).
    L_val(unigram) is the validation loss of the training split's token frequencies (`held_out.unigram_loss`; same
    tokenizer only, across tokenizers L = L_val(student)): what a student learns from the data alone in its first
    steps. So the step-0 evaluation checks the teacher before use: one no better than token frequencies is released
    before the first step. Why (issue 29): under KD a student follows its teacher's smooth, context-poor
    distribution, its gradient collapses (norm 0.1–0.3 against scratch's 0.6–1.0) and it sits on the unigram plateau
    (≈ L_val(unigram)) through the high-LR phase; released at a later evaluation, it escapes the plateau late, at a
    lower learning rate, and ends behind scratch.

    Between evaluations the weight follows the student on the training batches (the running mean D): a teacher
    little better than token frequencies weighs little from the first step and nothing once the student's own LM
    loss reaches the teacher's, not one evaluation later. Squared, a batch gap of a fraction of m weighs less than
    its share (0.4 nats: 0.16): a student a few tenths of a nat behind learns that much from the data alone within a
    few dozen steps, while KD at that weight already pins it to the teacher's smooth distribution (issue 29, the
    tuning seed: the teacher at 5.89 nats cost +0.040 nats over scratch with g_val alone, +0.033 with clip(D/m, 0,
    1), +0.006 squared; docs/inherit.md). A gap ≥ m keeps the full weight. Both LM losses are free: the student's is
    the objective's, the teacher's the cross-entropy of the logits the KD term already has (same tokenizer, full
    logits; with top_k or across tokenizers there is no batch evidence and g = g_val). A teacher may have trained on
    these very batches (a demo's teacher and students share the data order): its training loss is lower than its
    loss on new text, so the batch gap overstates what it has to teach; g_val caps it, and only the validation gap
    releases.

    The two validation losses come from two code paths (the trainer's evaluation; kinherit's pass of the teacher over
    the same batches at the same batch size) whose float sums differ in the last bits from one CPU to another (an
    exact copy measured 6.2063007 against 6.2063001 on an AMD EPYC), so the comparison allows ε: a student within
    1e-4 nats of its teacher has caught up on every machine. A checkpoint carries (`switch_step`, `gap`,
    `batch_gap`); under data parallelism both batch losses are means over the processes, so every process keeps the
    same D.
    """

    switch_step: int | None = None
    gap: float = 1.0
    """g_val, from the latest evaluation."""
    batch_gap: float | torch.Tensor | None = None
    """D, in nats: the running mean of the batch gaps d_b (None before the first)."""

    def factor(self) -> float | torch.Tensor:
        """g: g_val, capping the batch gap's weight clip(D/m, 0, 1)² once there is one."""
        if self.batch_gap is None:
            return self.gap
        return gap_weight(self.batch_gap, 0.0).square().clamp(max=self.gap)

    def observe(self, step: int, student: float, teacher: float) -> None:
        """Record losses measured after `step` optimizer steps; switch at `step` when the student caught up."""
        if self.switch_step is None and student <= teacher + CAUGHT_UP:
            self.switch_step = step

    def observe_validation(self, step: int, student: float, teacher: float) -> None:
        """An evaluation after `step` steps: update g_val and possibly switch."""
        if self.switch_step is None:
            self.gap = float(gap_weight(student, teacher))
        self.observe(step, student, teacher)

    def observe_batch(self, student: torch.Tensor, teacher: torch.Tensor) -> None:
        """A training micro-batch's credited student and teacher LM losses: D ← β·D + (1 − β)·d_b."""
        gap = (student.detach() - teacher.detach()).float()
        self.batch_gap = gap if self.batch_gap is None else BATCH_MEAN * self.batch_gap + (1 - BATCH_MEAN) * gap

    def state_dict(self) -> dict[str, Any]:
        batch_gap = None if self.batch_gap is None else float(self.batch_gap)
        return {"switch_step": self.switch_step, "gap": self.gap, "batch_gap": batch_gap}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.switch_step = state.get("switch_step")
        self.gap = float(state.get("gap", 1.0))
        self.batch_gap = state.get("batch_gap")


register_schedule(
    AUTO,
    ends=True,
    reference="after Qin et al. 2022, Knowledge Inheritance for Pre-trained Language Models (linear α; inheritance "
    "ends once the student stops learning from the teacher), https://arxiv.org/abs/2105.13880",
    state=AutoStop,
)(linear)


class Alpha:
    """α_t of one run, the only place it is computed: the registered schedule at (α₀, T) and its state.

        α_t = 0                         once inheritance stopped itself (a stateful schedule: t ≥ switch step)
        α_t = schedule(t; α₀, T)        otherwise

    The weight applied to a micro-batch is α_t times a stateful schedule's `factor` (`weight`). The state a
    checkpoint must carry is the schedule's (`state_dict`; empty for a stateless one).
    """

    def __init__(self, schedule: Schedule, alpha0: float, horizon: int):
        self.schedule, self.alpha0, self.horizon = schedule, alpha0, horizon
        self.state = schedule.state() if schedule.state is not None else None

    def _stopped(self, t: int) -> bool:
        """Whether α is 0 at step t because inheritance stopped itself."""
        switch = self.state.switch_step if self.state is not None else None
        return switch is not None and t >= switch

    def __call__(self, t: int) -> float:
        return 0.0 if self._stopped(t) else self.schedule.alpha(t, self.alpha0, self.horizon)

    def weight(self, t: int) -> float | torch.Tensor:
        """The KD weight of a micro-batch at step t: α_t, times a stateful schedule's factor."""
        return self(t) if self.state is None else self(t) * self.state.factor()

    def teacher_steps(self, step: int) -> int:
        """How many of the first `step` optimizer steps ran the teacher (α > 0)."""
        ran = self.schedule.teacher_steps(step, self.alpha0, self.horizon)
        switch = self.state.switch_step if self.state is not None else None
        return ran if switch is None else min(ran, switch)

    def done(self, t: int) -> bool:
        """α is 0 at step t and at every later step: the teacher is no longer needed."""
        return self.alpha0 == 0 or (self.schedule.ends and t >= self.horizon) or self._stopped(t)

    def observe_validation(self, step: int, student: float, teacher: float) -> None:
        """The (student, teacher) validation losses after `step` steps: a stateful schedule's evidence."""
        if self.state is not None:
            self.state.observe_validation(step, student, teacher)

    def observe_batch(self, student: torch.Tensor, teacher: torch.Tensor) -> None:
        """A training micro-batch's (credited student, teacher) LM losses: a stateful schedule's evidence."""
        if self.state is not None:
            self.state.observe_batch(student, teacher)

    def state_dict(self) -> dict[str, Any]:
        return self.state.state_dict() if self.state is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.state is not None:
            self.state.load_state_dict(state)
