"""Knowledge inheritance (Qin et al., NAACL 2022): a trained smaller model teaches a larger student.

    losses.py     kd_loss (full / top-K, chunked) and TopK
    schedules.py  α_t registry: linear, heaviside, constant
    teacher.py    teacher folder checks (task, shared vocabulary) and lazy loading
    trainer.py    KITrainer (KinheritTrainer + KD term, teacher release, FLOPs) and its setup from a RunConfig
    cache.py      offline top-K teacher cache and the dataset that serves it
    command.py    `kinherit cache-teacher`
"""
