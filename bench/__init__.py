"""The benchmarks, each a module run from the repository root: `python -m bench.efficiency ...`.

Their shared protocol (tuning, one run, savings and bounds, mean ± std, parameter counts, budgets in tokens per
parameter, tokens/s) is `bench.protocol`; a bench is a spec plus a thin `main` that uses it.
"""
