"""The pure parts of knowledge distillation that a config names: one registry per extension point, below
`kinherit.config` (which validates `teacher.schedule`, `teacher.loss` and `teacher.cross_tokenizer` against
them) and below `kinherit.inherit` (which runs them).

    losses.py        lm_loss, mix, the KD-loss registry (forward / reverse KL, JSD, skew KL; full or top-K, by
                     row blocks), TopK
    schedules.py     the α_t registry (linear, heaviside, constant, auto) and `Alpha`, the run's α with its
                     checkpointed state
    alignment.py     a student block against the teacher's tokenization of the same text (teacher.cross_tokenizer)
    cross_tokenizer/ the cross-tokenizer method registry: alm, shared_vocab, shared_prefix and the targets they read

Nothing here loads a model, reads a dataset or imports `kinherit.config`.
"""
