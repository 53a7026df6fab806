"""Training: one `transformers.Trainer` subclass for every command, given its loss as an objective.

objective.py  the Objective protocol and ModelLoss (LM loss; classification cross-entropy)
trainer.py    KinheritTrainer: GA-exact term logging, FLOPs/tokens accounting, atomic checkpoints
run.py        training arguments, the resume rule, metrics log + progress bar around `train()`
progress.py   the one progress bar per run
pretrain.py   `kinherit pretrain` (the LM objective, or knowledge inheritance from `kinherit.inherit`)
command.py    the CLI entry
"""
