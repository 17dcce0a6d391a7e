"""Evaluation: lm-eval runs a suite on a model; the harness grades every sample itself.

evaluate.py   one evaluation: lm-eval generation, grading, judges, the protocol record
metrics.py    pass@k, maj@k and diversity from n samples per question
protocol.py   whether two results are comparable, and how they differ
results.py    the metrics.json format and its reader (older files read in today's names)
plots.py      pass@k plots
tasks/        the project's own lm-eval tasks (YAML + hooks), and hooks for hub math benchmarks
"""
