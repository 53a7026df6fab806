"""The methods of knowledge inheritance from a teacher with another tokenizer (`teacher.cross_tokenizer`): pure
losses and what they read. The teacher side (datasets, cache, the KD term of a run) is
`kinherit.inherit.cross_tokenizer`.

    ../alignment.py  student block → teacher tokens of the same text, aligned spans and common boundaries
    method.py        the method registry: one `register_method` per method, declaring the targets it reads
    targets.py       what the teacher contributes per student row (span log-likelihoods, top-K at boundaries)
    alm.py           (a) approximate likelihood matching over aligned spans
    shared_vocab.py  (b) KD over the exactly shared vocabulary at common boundaries, renormalised (the baseline)
    shared_prefix.py (c) KD over shared-prefix buckets at common boundaries (no renormalisation)

A new method is one file with one `@register_method(name, boundary_targets, reference)` loss, imported below.
"""

from kinherit.kd.cross_tokenizer import alm, shared_prefix, shared_vocab  # noqa: F401  (they register themselves)
from kinherit.kd.cross_tokenizer.method import METHODS, Method, register_method

__all__ = ["METHODS", "Method", "register_method"]
