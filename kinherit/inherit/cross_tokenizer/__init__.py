"""Knowledge inheritance from a teacher with another tokenizer, the teacher's side; the methods (pure losses, the
`METHODS` registry) are `kinherit.kd.cross_tokenizer`.

    blocks.py  the online dataset (student blocks with their alignment) and the aligner for a teacher folder
    term.py    the KD term the KI objective calls with the method's loss (same α schedules, teacher release, FLOPs)
    cache.py   `kinherit cache-teacher --cross-tokenizer METHOD`: the targets, precomputed
"""
