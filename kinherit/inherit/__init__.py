"""Knowledge inheritance (Qin et al., NAACL 2022): a trained smaller model teaches a larger student.

    losses.py     lm_loss, mix, the KD-loss registry (forward / reverse KL, JSD, skew KL; full or top-K, by row blocks), TopK
    schedules.py  α_t registry (linear, heaviside, constant) and `Alpha`, the run's α with the auto stop
    teacher.py    teacher folder checks (task, shared vocabulary) and lazy loading
    sources.py    teacher sources: online, cached, another tokenizer (columns, lifetime, FLOPs)
    objective.py  inheritance_loss (pure) and KnowledgeInheritance, the objective joining α, source and loss
    cache.py      offline top-K / top-p teacher cache and the dataset that serves it
    parts.py      a cache written by several processes (torchrun / accelerate launch), joined by the main one
    command.py    `kinherit cache-teacher`
    alignment.py  a student block against the teacher's tokenization of the same text (teacher.cross_tokenizer)
    cross_tokenizer/  KI from a teacher with another tokenizer: alm, shared_vocab, shared_prefix; online and cached
"""
