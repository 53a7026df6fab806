"""RoBERTa: BERT's encoder with positions offset by two, one token type and a dense + out_proj classifier."""

from transformers import RobertaConfig

from kinherit.arch.catalog import register_family
from kinherit.arch.families._encoder import ENCODER_BASE, ENCODER_KEYS, encoder_config, mlm_head
from kinherit.arch.spec import FamilySpec, HeadSpec, t
from kinherit.hf_folder import ROBERTA_POSITION_OFFSET

register_family(
    FamilySpec(
        name="roberta",
        model_types=("roberta",),
        config=ENCODER_KEYS,
        residual="post_norm",
        base_tensors=ENCODER_BASE,
        build_config=encoder_config(RobertaConfig, ROBERTA_POSITION_OFFSET),
        classifier=(
            t("classifier.dense.weight", "out:hidden", "in:hidden"),
            t("classifier.dense.bias", "out:hidden"),
            t("classifier.out_proj.weight", "fixed:labels", "in:hidden"),
            t("classifier.out_proj.bias", "fixed:labels"),
        ),
        reference="Liu et al. 2019, RoBERTa, https://arxiv.org/abs/1907.11692",
        heads=(
            HeadSpec("RobertaModel", "", "hidden"),
            mlm_head("RobertaForMaskedLM", "roberta.", "lm_head", "lm_head", "layer_norm"),
        ),
    )
)
