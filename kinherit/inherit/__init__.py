"""Knowledge inheritance (Qin et al., NAACL 2022): a trained smaller model teaches a larger student.

The pure math it runs (KD losses, α schedules, cross-tokenizer methods) is `kinherit.kd`; this package is the
teacher's side of a run and the objective.

    teacher.py    teacher folder checks (task, shared vocabulary) and lazy loading
    sources.py    teacher sources: online, cached, another tokenizer (columns, lifetime, FLOPs)
    objective.py  inheritance_loss (pure) and KnowledgeInheritance, the objective joining α, source and loss
    held_out.py   the teacher's validation loss, the evidence a stateful schedule (auto) compares with
    cache.py      offline top-K / top-p teacher cache and the dataset that serves it
    parts.py      a cache written by several processes (torchrun / accelerate launch), joined by the main one
    command.py    `kinherit cache-teacher`
    selection.py  data selection scored by small trained models
    cross_tokenizer/  a teacher with another tokenizer: the online dataset, the cache and the run's KD term
"""
