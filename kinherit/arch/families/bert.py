"""BERT: a post-LayerNorm encoder trained as a masked LM."""

from transformers import BertConfig

from kinherit.arch.catalog import register_family
from kinherit.arch.families._encoder import ENCODER_BASE, ENCODER_KEYS, encoder_config, mlm_head
from kinherit.arch.spec import FamilySpec, HeadSpec, t

register_family(
    FamilySpec(
        name="bert",
        model_types=("bert",),
        config=ENCODER_KEYS,
        residual="post_norm",
        base_tensors=ENCODER_BASE,
        build_config=encoder_config(BertConfig, 0),
        classifier=(t("classifier.weight", "fixed:labels", "in:hidden"), t("classifier.bias", "fixed:labels")),
        reference="Devlin et al. 2019, BERT, https://arxiv.org/abs/1810.04805",
        heads=(
            HeadSpec("BertModel", "", "hidden"),
            mlm_head("BertForMaskedLM", "bert.", "cls.predictions", "cls.predictions.transform", "LayerNorm"),
        ),
    )
)
