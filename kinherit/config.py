"""Typed run configuration: a YAML file plus `--section.key=value` overrides, validated by pydantic.

Unknown keys are errors that name the key (and the closest valid one), so a typo never silently
falls back to a default. `train:` passes through to `transformers.TrainingArguments` and is checked
against its fields.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from kinherit.arch.catalog import FAMILIES  # the family records (the `kinherit.arch` package registers them all)
from kinherit.arch.spec import DEFAULT_EXPERTS_PER_TOKEN, DEFAULT_NUM_EXPERTS
from kinherit.errors import KinheritError
from kinherit.grow.options import GrowthOptions  # a leaf (operator registries, no torch)
from kinherit.kd.cross_tokenizer import METHODS  # kd: the registries of pure losses, below config
from kinherit.kd.losses import DEFAULT_KD_LOSS, KD_LOSSES
from kinherit.kd.schedules import AUTO, SCHEDULES
from kinherit.registry import known


class _YamlLoader(yaml.SafeLoader):
    """SafeLoader that also reads `1e-3` (no dot) as a float, as YAML 1.2 and every user expects."""


_YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def read_yaml(text: str, where: str = "config") -> Any:
    """Parse YAML; a syntax error is a one-line `KinheritError` naming `where`, line and column."""
    try:
        return yaml.load(text, Loader=_YamlLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise KinheritError(f"{where} is not valid YAML: {problem}{at}") from None


class StrictModel(BaseModel):
    """Frozen pydantic model whose unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, use_attribute_docstrings=True)


class TokenizerConfig(StrictModel):
    """Train a byte-level BPE (`train_vocab_size`) or load an existing HF tokenizer folder (`path`)."""

    train_vocab_size: int | None = Field(4096, ge=260, le=1 << 20)
    """Vocabulary size of the byte-level BPE trained on the corpus (ignored when `path` is set)."""
    path: str | None = None
    """An existing tokenizer folder (`AutoTokenizer.from_pretrained`); overrides training."""
    min_frequency: int = Field(2, ge=1)
    """A pair must occur at least this often in the training sample to become a BPE merge."""
    train_sample_mb: float = Field(64.0, gt=0.0)
    """The BPE trains on at most this many MB of the training side (a seeded, evenly spread sample of
    its ~1 MB blocks and records); validation text is never part of it."""


DEFAULT_MAX_VAL_TOKENS = 65536
"""data.max_val_tokens: 2^16 tokens keep an evaluation at ≈ 1/8 of the compute between two default evaluations
(40 steps × 32 × 128 tokens). Measured (llama 64×4, two seeds, a 40 MB dictionary): the difference between two runs
has a standard error of ≈ 0.003 nats on these blocks, the level one of ≈ 0.025 against the whole split."""


class DataConfig(StrictModel):
    """The corpus: where the text is, how it is tokenized, split and packed into token memmaps."""

    sources: list[str] = Field(default_factory=lambda: ["stdlib"], min_length=1)
    """Text files, folders, globs, .jsonl/.parquet/.arrow (a `text` field), `datasets.save_to_disk` folders, or
    `stdlib`."""
    tokenizer: TokenizerConfig = Field(default_factory=TokenizerConfig)
    """How the tokenizer is trained or which one is loaded."""
    seq_len: int = Field(128, ge=8)
    """Tokens per training block."""
    val_fraction: float = Field(0.02, gt=0.0, lt=0.5)
    """Share of the corpus held out for validation (of documents, or of each file's bytes; see `split`)."""
    split: Literal["auto", "documents", "contiguous"] = "auto"
    """`documents`: a seeded hash sends each document to one side; `contiguous`: a seeded window of
    val_fraction of each text file's bytes is held out (nanoGPT style); `auto`: `documents` for
    record sources or enough files for ≥10 expected validation documents, else `contiguous`."""
    split_seed: int = Field(0, ge=-(1 << 63), lt=1 << 63)
    """Seed of the split hash (and of the tokenizer's training sample)."""
    text_field: str = "text"
    """Field of JSONL / Parquet / Arrow records and saved datasets that holds the text."""
    cache_dir: str | None = None
    """Where packed tokens are cached; default `$KINHERIT_CACHE` or `~/.cache/kinherit`."""
    max_documents: int | None = Field(None, ge=1)
    """Use only the first N documents (text files or records, in the sources' deterministic order)."""
    max_val_tokens: int | None = Field(DEFAULT_MAX_VAL_TOKENS, ge=1)
    """Evaluate on at most this many validation tokens: ⌊N/seq_len⌋ blocks spread evenly over the validation split,
    the same at every evaluation, for the teacher and in every run on the corpus (None: every block). An evaluation
    costs about a third of training on as many tokens; `kinherit eval` always scores the whole split."""

    @model_validator(mode="after")
    def _one_validation_block(self) -> DataConfig:
        if self.max_val_tokens is not None and self.max_val_tokens < self.seq_len:
            raise ValueError(
                f"data.max_val_tokens {self.max_val_tokens} is less than one block of data.seq_len={self.seq_len}; "
                "raise it or set it to null (every validation block)"
            )
        return self

    @property
    def max_val_blocks(self) -> int | None:
        """The validation blocks an evaluation scores (None: all)."""
        return None if self.max_val_tokens is None else self.max_val_tokens // self.seq_len


DEFAULT_MIN_POSITIONS = 2048
"""A built model holds at least this many positions unless model.max_position_embeddings says otherwise."""


class ModelConfig(StrictModel):
    """Build `family` at the given sizes, or load an HF model folder with `from`."""

    family: Annotated[str | None, known(FAMILIES)] = None
    """A registered family (`family choices` below: causal LMs, or bert/roberta as masked LMs); default llama unless
    `from` is set."""
    from_: str | None = Field(None, alias="from")
    """Start from this HF model folder (e.g. a grown model) instead; it must hold the data's tokenizer. Its sizes are
    the loaded model's: a size key set to another value is refused, and config.resolved.yaml records the real ones.
    Given on the command line (--model.from=DIR), it replaces the config file's family and size keys."""
    hidden_size: int = Field(128, ge=8)
    """Width of the residual stream (d)."""
    num_layers: int = Field(2, ge=1)
    """Number of transformer layers."""
    num_heads: int = Field(4, ge=1)
    """Attention heads; head_dim = hidden_size / num_heads."""
    num_kv_heads: int | None = Field(None, ge=1)
    """Key/value heads for grouped-query attention (llama-style families); default: num_heads."""
    intermediate_size: int | None = Field(None, ge=8)
    """FFN width; default 4·hidden (gpt2/bert) or ≈8/3·hidden rounded to 8 (llama-style)."""
    tie_word_embeddings: bool = True
    """Share the input embedding with the LM head."""
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """Dropout probability of attention and residual branches."""
    max_position_embeddings: int | None = Field(None, ge=1)
    """Positions the model can hold; default max(data.seq_len, 2048), so a model trained on short blocks can be
    continued at a longer data.seq_len and generate past its training length."""
    num_experts: int | None = Field(None, ge=1)
    """Experts per layer of a mixture-of-experts family (mixtral, qwen2_moe, qwen3_moe, olmoe); default 4."""
    num_experts_per_tok: int | None = Field(None, ge=1)
    """k, the experts each token is routed to (mixture-of-experts families); default 2."""

    def positions(self, seq_len: int) -> int:
        """`max_position_embeddings`, or its default for blocks of `seq_len` tokens."""
        return self.max_position_embeddings or max(seq_len, DEFAULT_MIN_POSITIONS)

    @model_validator(mode="before")
    @classmethod
    def _default_family(cls, data: Any) -> Any:
        if (
            isinstance(data, dict)
            and data.get("family") is None
            and data.get("from") is None
            and data.get("from_") is None
        ):
            return {**data, "family": "llama"}
        return data

    @model_validator(mode="after")
    def _family_or_from(self) -> ModelConfig:
        if self.family is not None and self.from_ is not None:
            raise ValueError(
                "set either model.family or model.from, not both (on the command line, --unset=model.family "
                "or --unset=model.from removes the config file's)"
            )
        if self.family is not None:
            family = FAMILIES[self.family]
            moe = (self.num_experts, self.num_experts_per_tok)
            if family.config.experts is None and moe != (None, None):
                raise ValueError(
                    f"num_experts / num_experts_per_tok are for mixture-of-experts families; {self.family} is dense"
                )
            k, experts = self.num_experts_per_tok or DEFAULT_EXPERTS_PER_TOKEN, self.num_experts or DEFAULT_NUM_EXPERTS
            if k > experts:
                raise ValueError(f"num_experts_per_tok {k} exceeds num_experts {experts}")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
        if self.num_kv_heads is not None and self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_heads {self.num_heads} is not divisible by num_kv_heads {self.num_kv_heads}")
        return self


class TeacherConfig(StrictModel):
    """Knowledge inheritance: L = (1 − α_t)·L_LM + α_t·τ²·KL(p_teacher(·/τ) ‖ p_student(·/τ)); see docs/inherit.md."""

    path: str | None = None
    """The teacher's HF model folder (with its tokenizer); it must share the student's vocabulary."""
    cache: str | None = None
    """A `kinherit cache-teacher` folder to read top-K teacher outputs from instead of running `path`."""
    alpha0: float = Field(1.0, ge=0.0, le=1.0)
    """α₀, the KD weight at step 0."""
    schedule: Annotated[str, known(SCHEDULES)] = AUTO
    """How α decays: linear (α₀·max(1 − t/T, 0)), heaviside (α₀ until T, then 0), constant (α₀ throughout), or auto:
    linear, weighted by the teacher/student loss gap (validation, and between evaluations the training batches'),
    and inheritance stops itself (α = 0 for good, teacher released) at the first evaluation where the student's
    validation loss is at or below the teacher's (online teacher only; with cross_tokenizer, the mean NLL per
    aligned span of the validation text; see `kd.schedules.AutoStop`).
    Default: auto with an online teacher (teacher.path), linear with teacher.cache (auto needs the teacher model);
    chosen by bench/existing_teacher.py (docs/results.md, "Knowledge inheritance from an existing teacher").
    `steps: auto` of earlier versions reads as `schedule: auto, steps: 1.0`."""
    steps: int | float = 1.0
    """T: an absolute step count (int) or a fraction of train.max_steps (float in (0, 1]; 1.0: the whole run).
    Default: 1.0 with schedule auto (it stops itself), else 0.5."""
    temperature: float = Field(1.0, gt=0.0)
    """τ, applied to both teacher and student logits. Default 1: measured better than the paper's 2 with every teacher
    of bench/existing_teacher.py (the figures: docs/results.md, "Knowledge inheritance from an existing teacher")."""
    top_k: int | None = Field(None, ge=1)
    """Keep only the teacher's top-K probabilities (renormalised); None uses the full vocabulary."""
    loss: Annotated[str, known(KD_LOSSES)] = DEFAULT_KD_LOSS
    """The KD term, τ²·D(p_teacher ‖ p_student): forward_kl (KL, the paper's), reverse_kl, jsd or skew_kl (see the KD
    loss choices below and `kinherit.kd.losses`). Same-tokenizer teachers: a cross_tokenizer method has its own loss."""
    cross_tokenizer: Annotated[str | None, known(METHODS)] = None
    """A teacher with another tokenizer (causal LM): `alm` matches the two models' log-likelihoods of every text
    span whose ends are token boundaries in both; at common boundaries, `shared_vocab` is KD over the tokens both
    vocabularies spell alike (renormalised), `shared_prefix` KD over buckets of tokens by their longest shared
    prefix. None: the vocabularies must be identical. See docs/inherit.md."""

    @model_validator(mode="before")
    @classmethod
    def _steps_auto(cls, data: Any) -> Any:
        """`steps: auto` of earlier versions as `schedule: auto` (`steps_auto_as_schedule`); after another schedule
        than linear it has no equivalent and is refused, naming the fix. The defaults that depend on the teacher:
        schedule linear with a cache, steps 0.5 with any schedule but auto."""
        data = steps_auto_as_schedule(data)
        if isinstance(data, dict) and "schedule" not in data and data.get("cache") is not None:
            data = {**data, "schedule": "linear"}  # auto needs the teacher model, which a cache does not hold
        if isinstance(data, dict) and "steps" not in data and data.get("schedule", AUTO) != AUTO:
            data = {**data, "steps": 0.5}
        if isinstance(data, dict) and data.get("steps") == AUTO:
            raise ValueError(
                f"teacher.steps: auto is now teacher.schedule: auto (linear, weighted by the "
                f"teacher/student gap, stopping itself); it cannot follow teacher.schedule "
                f"{data['schedule']}: set teacher.schedule: auto and teacher.steps: 1.0"
            )
        return data

    @model_validator(mode="after")
    def _check(self) -> TeacherConfig:
        if (self.path is None) == (self.cache is None):
            raise ValueError("set exactly one of teacher.path (online teacher) or teacher.cache (offline top-K cache)")
        if self.cross_tokenizer is not None and self.loss != DEFAULT_KD_LOSS:
            raise ValueError(
                f"teacher.loss {self.loss} applies to same-tokenizer teachers; teacher.cross_tokenizer "
                f"{self.cross_tokenizer} has its own loss: remove teacher.loss"
            )
        if self.stateful and self.cache is not None:
            raise ValueError(
                f"teacher.schedule: {self.schedule} compares the teacher's validation loss, which needs the "
                "teacher model: set teacher.path, not teacher.cache"
            )
        if isinstance(self.steps, bool) or (isinstance(self.steps, float) and not 0.0 < self.steps <= 1.0):
            raise ValueError(f"teacher.steps {self.steps} must be a step count (int ≥ 1) or a fraction in (0, 1]")
        if isinstance(self.steps, int) and self.steps < 1:
            raise ValueError(f"teacher.steps {self.steps} must be ≥ 1")
        return self

    @property
    def stateful(self) -> bool:
        """The schedule watches the student against the teacher (`kd.schedules.ScheduleState`)."""
        return SCHEDULES[self.schedule].state is not None


def steps_auto_as_schedule(teacher: Any) -> Any:
    """A `teacher:` section in this version's spelling: `steps: auto` (with the linear schedule) of the versions
    before `auto` became a schedule reads as `schedule: auto` over the whole run, `steps: 1.0` (the same T)."""
    if (
        isinstance(teacher, dict)
        and teacher.get("steps") == AUTO
        and teacher.get("schedule", "linear") in ("linear", AUTO)
    ):
        return {**teacher, "schedule": AUTO, "steps": 1.0}
    return teacher


def read_recorded_config(path: Path) -> dict[str, Any]:
    """A run's recorded `config.resolved.yaml` as a tree in this version's spelling, so that a run recorded by an
    earlier version compares equal to the same config resolved now (`--resume`, the demo's reuse check)."""
    tree = read_yaml(path.read_text(), str(path)) or {}
    if isinstance(tree, dict) and "teacher" in tree:
        tree["teacher"] = steps_auto_as_schedule(tree["teacher"])
    if isinstance(tree, dict) and "growth" in tree and "growth_lr_factor" not in tree:  # a pretrain run's record from
        # before the LR rule after growth: a run from a grown folder trained at factor 1
        start = (tree.get("model") or {}).get("from")
        grown = start is not None and Path(start, "growth.json").is_file()
        tree["growth_lr_factor"] = 1.0 if grown else RunConfig.model_fields["growth_lr_factor"].default
    if isinstance(tree, dict) and tree.get("growth"):  # a record from before growth steps were recorded resolved
        max_steps = {**TRAIN_DEFAULTS, **(tree.get("train") or {})}.get("max_steps", -1)
        stages = resolved_growth([GrowthStage.model_validate(stage) for stage in tree["growth"]], max_steps)
        tree["growth"] = [
            {**raw, "at_step": stage.at_step, "rewarm_steps": stage.rewarm_steps}
            for raw, stage in zip(tree["growth"], stages)
        ]
    return tree


class SelectionConfig(StrictModel):
    """Data selection scored by small trained models: which training blocks the run trains on (see docs/inherit.md and
    `kinherit.inherit.selection`)."""

    method: Literal["salt", "miniplm"]
    """salt: keep a band of the scoring model's per-block losses, neither trivially easy nor hopeless; miniplm: keep
    the blocks with the largest log p_model − log p_reference (difference sampling)."""
    model: str | None = None
    """The scoring model's HF folder (a causal LM with the student's tokenizer); None: teacher.path."""
    reference: str | None = None
    """miniplm: the smaller reference model's HF folder (same tokenizer)."""
    candidates: int | float | None = None
    """How many training blocks to score, drawn by a permutation seeded by `seed`: a count (int ≥ 1) or a fraction of
    the training blocks (float in (0, 1]); None: every block. Scoring costs a forward pass per candidate, so a corpus
    far larger than the run's budget is best sampled to about what the run consumes / keep."""
    keep: float = Field(0.5, gt=0.0, le=1.0)
    """Fraction of the candidates kept: k = max(1, round(keep·N))."""
    skip_easiest: float | None = Field(None, ge=0.0, lt=1.0)
    """salt: fraction of the lowest-loss blocks skipped before the kept band; None: (1 − keep)/2, a centred band."""
    seed: int = 0
    """Seeds the candidates' draw and the order of blocks with equal scores."""
    batch_size: int = Field(32, ge=1)
    """Blocks per scoring forward pass."""

    @model_validator(mode="after")
    def _check(self) -> SelectionConfig:
        c = self.candidates
        if isinstance(c, bool) or (isinstance(c, int) and c < 1) or (isinstance(c, float) and not 0.0 < c <= 1.0):
            raise ValueError(f"selection.candidates: {c!r} must be a block count (int ≥ 1) or a fraction in (0, 1]")
        if self.method == "miniplm" and self.reference is None:
            raise ValueError(
                "selection.reference: method miniplm scores log p_model − log p_reference; set it to a "
                "smaller trained model folder"
            )
        if self.method == "salt" and self.reference is not None:
            raise ValueError(
                "selection.reference: used by method miniplm only; remove it or set selection.method to miniplm"
            )
        if self.method == "miniplm" and self.skip_easiest is not None:
            raise ValueError(
                "selection.skip_easiest: used by method salt only (miniplm keeps the top blocks); remove it"
            )
        if self.skip_easiest is not None and self.skip_easiest + self.keep > 1.0 + 1e-9:
            raise ValueError(
                f"selection.skip_easiest: {self.skip_easiest} + keep {self.keep} exceeds 1, the band must fit "
                "inside the blocks; lower one of them"
            )
        return self

    @property
    def band_start(self) -> float:
        """Where the kept band starts among the blocks sorted by score (salt); 0 for miniplm."""
        if self.method == "miniplm":
            return 0.0
        return self.skip_easiest if self.skip_easiest is not None else (1.0 - self.keep) / 2


class GrowthStage(GrowthOptions):
    """One growth inside a `pretrain` run (staged training): at `at_step` the model grows exactly with the options of
    `kinherit grow` (sizes, operators, noise, seed, upcycling), and training continues on the same data stream."""

    at_step: int | float | Literal["auto"]
    """When to grow: an optimizer step (int ≥ 1), a fraction of train.max_steps (float in (0, 1)), or `auto`:
    stage k of n grows at AUTO_LAST_GROWTH·k/n of train.max_steps (two stages: 0.4 and 0.8), the rule measured
    best in `bench/progressive.py` (docs/results.md, "When to grow")."""
    optimizer_state: Literal["map", "reset"] = "map"
    """AdamW's moments through the growth: `map` carries them through the growth's unit maps (the gradient's
    image: a copy of a unit gets 1/k of its first moment, 1/k² of its second; new layers start fresh), `reset`
    starts every moment at 0 (the step count and bias correction restart too)."""
    lr_policy: Literal["continue", "rewarm"] = "continue"
    """The LR schedule after the growth: `continue` on the run's schedule, or `rewarm` linearly from 0 back to it
    over `rewarm_steps`."""
    rewarm_steps: int | float = 0.02
    """Re-warm length: steps (int) or a fraction of train.max_steps (float)."""
    lr_scaling: Literal["none", "growth"] = "none"
    """`growth`: each grown tensor's learning rate is multiplied (and its weight decay divided) by the growth
    map's coefficient a (1/k on an axis that reads k copies of a unit), so Adam's first update after a `map`ped,
    noise-free growth is the grown image of the small model's update (muP's rule for Adam); `none`: the run's LR
    for every tensor (a unit read by k copies then moves k times as far)."""

    @field_validator("at_step", mode="before")
    @classmethod
    def _step_fraction_or_auto(cls, value: Any) -> Any:
        if isinstance(value, str) and value != "auto":
            raise ValueError(f"{value!r} is not a step (int ≥ 1), a fraction of train.max_steps in (0, 1) or auto")
        return value


MAPPABLE_OPTIMIZERS = ("adamw_torch_fused", "adamw_torch")
"""`train.optim` values whose state (torch's Adam/AdamW: step, exp_avg, exp_avg_sq) `optimizer_state: map` carries."""
NO_GROWTH_SCHEDULES = ("reduce_lr_on_plateau",)
"""Schedules that are not a function of the step, so a growth cannot position them (`trainer.position_schedule`)."""

AUTO_LAST_GROWTH = 0.8
"""`at_step: auto` puts the last growth at this fraction of train.max_steps (earlier ones evenly before it)."""


def growth_steps(growth: list[GrowthStage], max_steps: int) -> list[int]:
    """The step of each growth stage: `stage_step` of its `at_step`, with `auto` as AUTO_LAST_GROWTH·k/n for stage
    k = 1..n of n."""
    n = len(growth)
    return [
        stage_step(
            AUTO_LAST_GROWTH * (k + 1) / n if stage.at_step == "auto" else stage.at_step,
            max_steps,
            f"growth[{k}].at_step",
        )
        for k, stage in enumerate(growth)
    ]


def resolved_growth(growth: list[GrowthStage], max_steps: int) -> list[GrowthStage]:
    """The stages with `at_step` and `rewarm_steps` as the step counts they resolve to at `max_steps`: what a run
    records in config.resolved.yaml when it starts, and keeps when it is resumed."""
    return [
        stage.model_copy(update={"at_step": b, "rewarm_steps": stage_step(stage.rewarm_steps, max_steps)})
        for stage, b in zip(growth, growth_steps(growth, max_steps))
    ]


WSD = "warmup_stable_decay"
WSD_DECAY = 0.2
"""WSD's decay length when `lr_scheduler_kwargs.num_decay_steps` is not given: the last 20% of the steps, where
Hägele et al. (2024) find WSD matches cosine."""


def wsd_kwargs(kwargs: dict[str, Any], max_steps: int) -> dict[str, Any]:
    """transformers' WSD arguments with `num_decay_steps` as a step count: default WSD_DECAY, and a fraction
    f ∈ (0, 1) of train.max_steps as round(f·max_steps), as `warmup_steps` takes one."""
    key = "train.lr_scheduler_kwargs.num_decay_steps"
    if max_steps <= 0 and not isinstance(kwargs.get("num_decay_steps"), int):
        raise ValueError(f"{key} as a fraction needs train.max_steps; give train.max_steps or a step count")
    decay = stage_step(kwargs.get("num_decay_steps", WSD_DECAY), max_steps, key)
    if 0 < max_steps <= decay:
        raise ValueError(
            f"{key} {decay} leaves no stable phase in train.max_steps {max_steps}; give a fraction such as 0.2"
        )
    return {**kwargs, "num_decay_steps": decay}


TRAIN_DEFAULTS: dict[str, Any] = {
    "max_steps": 400,
    "per_device_train_batch_size": 32,
    "per_device_eval_batch_size": 64,
    "learning_rate": 2.0e-3,
    "lr_scheduler_type": "cosine",
    "warmup_steps": 0.05,
    "weight_decay": 0.1,
    "max_grad_norm": 1.0,
    "logging_steps": 10,
    "eval_steps": 40,
    "eval_on_start": True,  # a step-0 point makes compute-to-target-loss curves start where training starts
    "save_steps": 200,
    "save_total_limit": 2,
    "seed": 0,
    "report_to": "none",
    "dataloader_num_workers": 0,
}


AT_LEAST_ONE = ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps")
NON_NEGATIVE = ("learning_rate", "weight_decay", "max_grad_norm", "warmup_steps")
POSITIVE = ("logging_steps", "eval_steps", "save_steps")


def check_training_arguments(value: dict[str, Any]) -> dict[str, Any]:
    """Every key must be a `transformers.TrainingArguments` field (a typo names the closest one),
    every value must have the field's type, and sizes, rates and intervals must be in range, so a bad
    `train:` value stops the run before any data is read instead of failing inside the Trainer."""
    from pydantic import TypeAdapter
    from transformers import TrainingArguments

    fields = {f.name for f in dataclasses.fields(TrainingArguments)}
    types = typing.get_type_hints(TrainingArguments)
    for key, item in value.items():
        if key not in fields:
            hint = difflib.get_close_matches(key, fields, n=1)
            suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
            raise ValueError(f"{key!r} is not a transformers.TrainingArguments field{suggestion}")
        try:
            TypeAdapter(types[key]).validate_python(item)
        except ValidationError:
            raise ValueError(f"train.{key}: must be {_readable(types[key])}, got {item!r}") from None
        number = isinstance(item, int | float) and not isinstance(item, bool)
        if number and key in AT_LEAST_ONE and item < 1:
            raise ValueError(f"train.{key}: must be ≥ 1, got {item!r}")
        if number and key in NON_NEGATIVE and item < 0:
            raise ValueError(f"train.{key}: must be ≥ 0, got {item!r}")
        if number and key in POSITIVE and item <= 0:
            raise ValueError(f"train.{key}: must be > 0, got {item!r}")
    return value


def _readable(tp: Any) -> str:
    """`float`, `int`, `str or None`: a type as the error message names it."""
    args = typing.get_args(tp)
    parts = [getattr(a, "__name__", str(a)) for a in args] if args else [getattr(tp, "__name__", str(tp))]
    return " or ".join("null" if p == "NoneType" else p for p in parts)


class RunConfig(StrictModel):
    """`kinherit pretrain`: data → model → training, optionally with a teacher (knowledge inheritance)."""

    out: str = "runs/run"
    """Output folder: config.resolved.yaml, metrics.jsonl, checkpoints/, model/."""
    data: DataConfig = Field(default_factory=DataConfig)
    """The corpus, its tokenizer and packing."""
    model: ModelConfig = Field(default_factory=ModelConfig)
    """The model to train: a family at given sizes, or an HF folder (`from`)."""
    train: dict[str, Any] = Field(default_factory=dict)
    """Passed to `transformers.TrainingArguments` on top of kinherit's defaults."""
    teacher: TeacherConfig | None = None
    """Knowledge inheritance from a smaller trained model (None: self-learning)."""
    growth: list[GrowthStage] = Field(default_factory=list)
    """Staged training: grow the model at these steps within the run (empty: one shape throughout)."""
    selection: SelectionConfig | None = None
    """Train on the training blocks chosen by small trained models (None: every block)."""
    growth_lr_factor: float = Field(2.0, gt=0)
    """The LR rule after growth: a model that `kinherit grow` made (`model.from` holds its growth.json) trains at
    train.learning_rate × this, train.learning_rate being the LR you would train its shape with from scratch. 2 by
    measurement (docs/results.md, "The learning rate after growth"); 1 keeps train.learning_rate. A staged run
    (`growth:`) trains at train.learning_rate: its measured best ratio depends on the budget and schedule
    (docs/staged.md)."""

    @field_validator("train")
    @classmethod
    def _train_keys_exist(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_training_arguments(value)

    @model_validator(mode="after")
    def _teacher_within_run(self) -> RunConfig:
        steps = self.teacher.steps if self.teacher is not None else None
        stateful = self.teacher is not None and self.teacher.stateful
        max_steps = {**TRAIN_DEFAULTS, **self.train}.get("max_steps", -1)
        if isinstance(max_steps, bool) or not isinstance(max_steps, int):
            raise ValueError(f"train.max_steps must be a whole number of optimizer steps, got {max_steps!r}")
        self.train_args  # noqa: B018  (WSD's decay length is checked against max_steps)
        if isinstance(steps, float) and max_steps <= 0:
            raise ValueError("teacher.steps as a fraction needs train.max_steps; give an absolute step count")
        if isinstance(steps, int) and 0 < max_steps < steps:
            raise ValueError(f"teacher.steps {steps} exceeds train.max_steps {max_steps}")
        at = growth_steps(self.growth, max_steps)
        for i, stage in enumerate(self.growth):
            if stage.lr_policy == "rewarm":
                stage_step(stage.rewarm_steps, max_steps, f"growth[{i}].rewarm_steps")
        if at and (max_steps <= 0 or any(b <= a for a, b in zip(at, at[1:])) or at[-1] >= max_steps):
            raise ValueError(
                f"growth stages must grow at increasing steps inside the run (1 … train.max_steps − 1 = "
                f"{max_steps - 1}); they resolve to {at}"
            )
        positions = self.model.max_position_embeddings
        if positions is not None and positions < self.data.seq_len:
            raise ValueError(
                f"model.max_position_embeddings: {positions} is fewer than data.seq_len {self.data.seq_len}; raise "
                "it or lower data.seq_len"
            )
        selection = self.selection
        if selection is not None and selection.model is None and (self.teacher is None or self.teacher.path is None):
            raise ValueError(
                "selection.model: needed to score the training blocks; set it (or teacher.path) to a trained model "
                "folder"
            )
        if stateful and self.train_args.get("eval_strategy") == "no":
            raise ValueError(
                f"teacher.schedule: {self.teacher.schedule} decides at evaluations (the student's validation "
                "loss against the teacher's): remove train.eval_strategy: no and set train.eval_steps"
            )
        return self

    @model_validator(mode="after")
    def _growth_fits_training(self) -> RunConfig:
        """What a growth inside the run cannot carry is refused here, before any data is read."""
        if not self.growth:
            return self
        args = self.train_args
        for key in ("fsdp", "deepspeed"):
            if args.get(key):
                raise ValueError(
                    f"growth: is not supported with train.{key} (the growth reads and writes whole, "
                    f"unsharded checkpoints); remove train.{key} (DDP under torchrun works) or the growth stages"
                )
        if args.get("lr_scheduler_type") in NO_GROWTH_SCHEDULES:
            raise ValueError(
                f"growth: needs a schedule that is a function of the step; train.lr_scheduler_type "
                f"{args['lr_scheduler_type']} is not: choose e.g. {WSD} or cosine"
            )
        optim = args.get("optim", MAPPABLE_OPTIMIZERS[0])  # transformers' default is the first
        for i, stage in enumerate(self.growth):
            if stage.optimizer_state == "map" and optim not in MAPPABLE_OPTIMIZERS:
                raise ValueError(
                    f"growth[{i}].optimizer_state: map carries AdamW's moments, and train.optim {optim} "
                    f"keeps other state; set growth[{i}].optimizer_state: reset or train.optim to one of "
                    f"{', '.join(MAPPABLE_OPTIMIZERS)}"
                )
        return self

    @property
    def train_args(self) -> dict[str, Any]:
        """kinherit's defaults overlaid with the user's `train:` section (WSD's decay length as a step count)."""
        args = {**TRAIN_DEFAULTS, **self.train}
        if args.get("lr_scheduler_type") == WSD:
            args["lr_scheduler_kwargs"] = wsd_kwargs(args.get("lr_scheduler_kwargs") or {}, args["max_steps"])
        return args


def stage_step(at: int | float, max_steps: int, key: str = "at_step") -> int:
    """A step count of a growth stage (its time, its re-warm length): an int as is (≥ 1), a fraction f ∈ (0, 1)
    of train.max_steps as round(f·max_steps) ≥ 1."""
    if isinstance(at, bool) or (isinstance(at, int) and at < 1) or (isinstance(at, float) and not 0.0 < at < 1.0):
        raise ValueError(f"{key} {at!r} must be a step (int ≥ 1) or a fraction of train.max_steps in (0, 1)")
    return at if isinstance(at, int) else max(1, round(at * max_steps))


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise KinheritError(f"override --{dotted}: {key!r} is not a section")
        node = child
    node[keys[-1]] = value


class _Unset:
    """The value `--unset=KEY` gives KEY in an override tree: `merge_trees` removes the key."""

    def __repr__(self) -> str:
        return "<unset>"


UNSET = _Unset()
UNSET_OPTION = "unset"
"""`--unset=section.key[,section.key...]` removes keys of the config file, so they take their defaults (a value
of null would set them to null, which is not the default for every key)."""


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """`["--train.max_steps=10", "--out", "x", "--unset=model.hidden_size"]` → nested dict; values are parsed as
    YAML scalars; an unset key holds `UNSET`."""
    tree: dict[str, Any] = {}
    items = list(overrides)
    while items:
        item = items.pop(0)
        if not item.startswith("--"):
            raise KinheritError(f"unexpected argument {item!r}; overrides look like --section.key=value")
        key, eq, raw = item[2:].partition("=")
        if not eq:
            if not items or items[0].startswith("--"):
                raise KinheritError(f"override --{key} needs a value: --{key}=VALUE")
            raw = items.pop(0)
        if key == UNSET_OPTION:
            for dotted in raw.split(","):
                if not dotted.strip() or any(not part for part in dotted.strip().split(".")):
                    raise KinheritError(
                        f"--unset={raw}: name the keys to remove, e.g. --unset=model.hidden_size,model.num_layers"
                    )
                _set_dotted(tree, dotted.strip(), UNSET)
            continue
        _set_dotted(tree, key, read_yaml(raw, f"override --{key}"))
    return tree


def merge_trees(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict update: `extra`'s leaves win, sections merge, and a key `extra` holds as `UNSET` is removed."""
    merged = dict(base)
    for key, value in extra.items():
        if value is UNSET:
            merged.pop(key, None)
        elif isinstance(value, dict):
            section = merge_trees(merged[key] if isinstance(merged.get(key), dict) else {}, value)
            if section or not value or key in merged:  # unsetting keys of an absent section adds no empty one
                merged[key] = section
        else:
            merged[key] = value
    return merged


MODEL_SIZE_KEYS = (
    "hidden_size",
    "num_layers",
    "num_heads",
    "num_kv_heads",
    "intermediate_size",
    "tie_word_embeddings",
    "max_position_embeddings",
    "num_experts",
    "num_experts_per_tok",
)
"""`model:` keys that describe the loaded model when `model.from` is set."""


def model_from_overrides(raw: dict[str, Any], extra: dict[str, Any], where: str) -> dict[str, Any]:
    """`raw` (a config file's tree) without the `model:` family and size keys that a `model.from` set in `extra` (the
    command line) replaces, saying so in one line; sizes given in `extra` itself stay, to be checked against the
    folder (`train.preflight.with_loaded_sizes`)."""
    given, model = extra.get("model"), raw.get("model")
    if not isinstance(given, dict) or not isinstance(model, dict):
        return raw
    start = given.get("from", given.get("from_"))
    if start is None or start is UNSET:
        return raw
    replaced = [key for key in ("family", *MODEL_SIZE_KEYS) if key in model and key not in given]
    if not replaced:
        return raw
    print(
        f"model.from {start} overrides model.{'/'.join(replaced)} of {where} (the folder's model is trained as it is)"
    )
    return {**raw, "model": {key: value for key, value in model.items() if key not in replaced}}


def config_differences(old: Any, new: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted key, old value, new value) for every leaf where two nested config trees differ, sorted by key;
    a key missing on one side reads as None there."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [
            d
            for key in sorted(set(old) | set(new), key=str)
            for d in config_differences(old.get(key), new.get(key), f"{prefix}{key}.")
        ]
    return [] if old == new else [(prefix.rstrip("."), old, new)]


def section_keys(cls: type[BaseModel], path: tuple[Any, ...]) -> list[str]:
    """The keys a config section accepts: `path` (e.g. ("data", "tokenizer")) walked down from the model `cls`."""
    for part in path:
        field = next((f for name, f in cls.model_fields.items() if part in (name, f.alias)), None)
        nested = (
            [
                t
                for t in (field.annotation, *typing.get_args(field.annotation))
                if isinstance(t, type) and issubclass(t, BaseModel)
            ]
            if field
            else []
        )
        if not nested:
            return []
        cls = nested[0]
    return [f.alias or name for name, f in cls.model_fields.items()]


def describe_validation_error(err: ValidationError, cls: type[BaseModel] | None = None) -> str:
    """The first pydantic error as one line naming the key, e.g. `config key model.hiden_size: unknown key (did you
    mean 'hidden_size'?)`; the suggestion comes from the keys of that section of `cls`."""
    first = err.errors()[0]
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        hint = (
            difflib.get_close_matches(str(first["loc"][-1]), section_keys(cls, first["loc"][:-1]), n=1) if cls else []
        )
        msg = (
            f"unknown key (did you mean {hint[0]!r}?)"
            if hint
            else "unknown key (check the spelling; see docs/pretrain.md, 'Configuration')"
        )
    where = ".".join(str(p) for p in first["loc"])
    if where and msg.startswith(where + ".") and ": " in msg:  # the validator named a deeper key
        where, _, msg = msg.partition(": ")
    return f"config key {where}: {msg}" if where else f"config: {msg}"


Config = TypeVar("Config", bound=BaseModel)


def validate_as(cls: type[Config], raw: dict[str, Any]) -> Config:
    """Validate `raw` as `cls`; a failure is a one-line `KinheritError`."""
    try:
        return cls.model_validate(raw)
    except ValidationError as err:
        raise KinheritError(describe_validation_error(err, cls)) from None


INPUT_PATHS = (
    "data.sources",
    "data.tokenizer.path",
    "model.from",
    "model.base",
    "model.adapter",
    "teacher.path",
    "teacher.cache",
)
"""Config keys that name existing files or folders (`check_input_paths`)."""


def check_input_paths(raw: dict[str, Any], config_file: Path) -> None:
    """Relative paths in a config resolve against the directory kinherit runs in, like the command line's. A path
    that is missing there but exists next to the config file is refused, naming both directories."""
    here, beside = Path.cwd(), config_file.resolve().parent
    if beside == here:
        return
    for dotted in INPUT_PATHS:
        node: Any = raw
        for key in dotted.split("."):
            node = node.get(key) if isinstance(node, dict) else None
        for value in node if isinstance(node, list) else [node]:
            if (
                isinstance(value, str)
                and value != "stdlib"
                and not Path(value).is_absolute()
                and not Path(value).exists()
                and (beside / value).exists()
            ):
                raise KinheritError(
                    f"{dotted} {value!r} in {config_file} does not exist in the current directory {here} (paths in "
                    f"a config resolve against it) but does next to the config file: run from {beside} or write it "
                    f"as {beside / value}"
                )


def load_yaml_config(
    cls: type[Config], path: str | Path | None, overrides: list[str] | dict[str, Any] | None = None
) -> Config:
    """Read YAML at `path` (optional), apply `--section.key=value` and `--unset=section.key` overrides, validate as
    `cls`. A `model.from` among the overrides replaces the file's model family and sizes (`model_from_overrides`).
    Relative paths resolve against the current directory (see `check_input_paths`)."""
    raw: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise KinheritError(f"config file {path} not found (in {Path.cwd()})")
        raw = read_yaml(path.read_text(), f"config file {path}") or {}
        if not isinstance(raw, dict):
            raise KinheritError(f"config file {path} must hold a mapping of sections")
        check_input_paths(raw, path)
    extra = overrides if isinstance(overrides, dict) else parse_overrides(overrides or [])
    if (
        path is not None
        and cls.model_fields.get("model") is not None
        and cls.model_fields["model"].annotation is ModelConfig
    ):
        raw = model_from_overrides(raw, extra, str(path))
    return validate_as(cls, merge_trees(raw, extra))


def dump_yaml(config: BaseModel) -> str:
    """A config as YAML (aliases used, so it loads back)."""
    return yaml.safe_dump(config.model_dump(by_alias=True, mode="json"), sort_keys=False)


def load_config(path: str | Path | None, overrides: list[str] | dict[str, Any] | None = None) -> RunConfig:
    """The pre-training config at `path` plus overrides; errors name the offending key."""
    return load_yaml_config(RunConfig, path, overrides)


def validate_config(raw: dict[str, Any]) -> RunConfig:
    return validate_as(RunConfig, raw)
