"""Reporting: results/ turned into leaderboards, verdicts, HTML pages and the MLflow index.

leaderboard.py  per paper and scale: variants ranked by the mean over seeds, with verdicts
verdicts.py     reported numbers reproduced or not, claims held or not, allowing for seed noise
html.py         one HTML page per paper and scale (verdicts, leaderboard, curves) and an index
tracking.py     MLflow: the index and UI over results/ (the only module importing mlflow)
"""
