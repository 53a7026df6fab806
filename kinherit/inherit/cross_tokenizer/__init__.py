"""Knowledge inheritance from a teacher with another tokenizer (`teacher.cross_tokenizer`).

    ../alignment.py  student block → teacher tokens of the same text, aligned chunks and common boundaries
    targets.py       what the teacher contributes per student row (chunk log-likelihoods, top-K at boundaries)
                     and the dataset that serves the alignment (online) or the cached targets (offline)
    alm.py           (a) approximate likelihood matching over aligned chunks
    shared_vocab.py  (b) KD over the exactly shared vocabulary at common boundaries, renormalised (the baseline)
    shared_prefix.py (c) KD over shared-prefix buckets at common boundaries (no renormalisation)
    objective.py     the KI objective with these losses (same α schedules, teacher release, FLOPs)
    cache.py         `kinherit cache-teacher --cross-tokenizer METHOD`: the targets, precomputed
"""

from kinherit.inherit.cross_tokenizer.alm import alm_loss
from kinherit.inherit.cross_tokenizer.shared_prefix import shared_prefix_kd
from kinherit.inherit.cross_tokenizer.shared_vocab import shared_vocab_kd

METHODS = {"alm": alm_loss, "shared_vocab": shared_vocab_kd, "shared_prefix": shared_prefix_kd}
"""teacher.cross_tokenizer → loss(student_logits, input_ids, targets, temperature)."""
