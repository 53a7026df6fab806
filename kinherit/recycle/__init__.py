"""Recyclable tuning (Qin et al. 2023), extended to grown models: reuse a fine-tuning of an old base A
when fine-tuning the upgraded base B (A continually pre-trained, or grown).

    delta.recycle_full(A, A_tuned, B, out, scale, growth)        B + λ·(A_tuned − A) [through growth]
    adapters.recycle_adapter(A, adapter, B, out, scale, growth)  A's LoRA adapter on B [through growth]
    finetune.finetune(FinetuneConfig, resume)                     classifier fine-tuning, optional KD teacher
    distillation.ClassificationDistillation                       the (1 − α)·CE + α·τ²·KL objective
    comparison.run(ExperimentConfig)                              scratch / init / distill / combined

The task data lives in `kinherit.data.classification`, model folders are read by `kinherit.hf_folder`.
Modules are imported on use (the CLI stays fast); see docs/recycle.md.
"""
