"""Metric bands: the range a bundle's shipped results may move in before a run counts as drift.

`harness bands PAPER --write` turns the bundle's leaderboard at a scale into `papers/PAPER/bands.yaml`: for each
variant, on the leaderboard's first task, a band for pass@1, maj@n and pass@n (n: the protocol's samples), the range
of its seeds' values widened on each side by the larger of three standard deviations over seeds and `min_width`
(the seeds alone cannot show how far another machine's base, built to the same skill, lands from this one's).
`harness bands PAPER` (the default action) checks the current leaderboard against the file: every seed's value of
every banded metric must lie in its band; each one outside is named with its value and band.

A cut (`snakemake --config seeds=[0] variants=[...]`, then `harness --variants ... bands`) is how CI checks that
the toy world has not moved: its numbers are checked against the bands of the full run.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import yaml

from harness.config.errors import ConfigError
from harness.layout import write_atomic
from harness.reporting.leaderboard import SHOWN

BANDS_FILE = "bands.yaml"
MIN_WIDTH = 0.03
HEADER = """# Metric bands of this bundle's results, written by `harness bands {paper} --scale {scale} --write` from its
# leaderboard (never by hand). A band is the seeds' range widened on each side by the larger of 3 standard
# deviations over seeds and `min_width`; `harness bands {paper} --scale {scale}` fails naming each number outside.
"""


def band(values: list[float], min_width: float = MIN_WIDTH) -> list[float]:
    """[low, high] around the seeds' `values`: their range widened by max(3 std, min_width), clipped to [0, 1].

    >>> band([0.80, 0.81, 0.82])
    [0.77, 0.85]
    >>> band([0.05, 0.10, 0.15])
    [0.0, 0.3]
    >>> band([0.99])
    [0.96, 1.0]
    """
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    half = max(3 * spread, min_width)
    return [round(max(0.0, min(values) - half), 3), round(min(1.0, max(values) + half), 3)]


def metric_names(board: dict) -> tuple[str, list[str]]:
    """The leaderboard's first task and the metrics banded on it: pass@1, maj@n, pass@n (n the protocol's samples)."""
    task = board["rows"][0]["task"]
    n = next(r for r in board["rows"] if r["task"] == task)["protocol"]["n_samples"]
    return task, list(dict.fromkeys(m.format(n=n) for m in (SHOWN if n > 1 else SHOWN[:1])))


def from_board(board: dict, min_width: float = MIN_WIDTH) -> dict:
    """A scale's section of bands.yaml from its leaderboard."""
    task, names = metric_names(board)
    rows = [r for r in board["rows"] if r["task"] == task]
    bands = {r["variant"]: {m: band(r["metrics"][m]["values"], min_width) for m in names if m in r["metrics"]}
             for r in rows}  # fmt: skip
    return {"task": task, "min_width": min_width, "seeds": rows[0]["seeds"], "made": board.get("made", {}),
            "bands": bands}  # fmt: skip


def bands_file(paper: str, papers_dir: Path) -> Path:
    return Path(papers_dir) / paper / BANDS_FILE


def read(paper: str, papers_dir: Path) -> dict:
    """bands.yaml of `paper` as {scale: section}; {} when it has none. ConfigError naming the file and key when it
    is malformed."""
    file = bands_file(paper, papers_dir)
    if not file.is_file():
        return {}
    try:
        data = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(file, "", f"not valid YAML: {e}") from None
    for scale, section in data.items() if isinstance(data, dict) else [("", data)]:
        if not isinstance(section, dict) or not isinstance(section.get("bands"), dict):
            raise ConfigError(file, str(scale), "a scale's section needs `bands: {variant: {metric: [low, high]}}`")
        for variant, metrics in section["bands"].items():
            for metric, b in (metrics or {}).items():
                if not (isinstance(b, list) and len(b) == 2 and all(isinstance(v, (int, float)) for v in b)
                        and b[0] <= b[1]):  # fmt: skip
                    raise ConfigError(file, f"{scale}.bands.{variant}.{metric}", f"a band [low, high]; got {b}")
    return data


def write(paper: str, scale: str, board: dict, papers_dir: Path, min_width: float = MIN_WIDTH) -> Path:
    """Replace `scale`'s section of the bundle's bands.yaml with bands from `board` (other scales are kept)."""
    data = read(paper, papers_dir) | {scale: from_board(board, min_width)}
    file = bands_file(paper, papers_dir)
    header = HEADER.format(paper=paper, scale=scale)
    write_atomic(file, header + yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=110))
    return file


def check(paper: str, scale: str, board: dict, papers_dir: Path, variants: list[str] | None = None
          ) -> tuple[list[str], int]:  # fmt: skip
    """(lines to print, how many numbers lie outside their bands) for `board` against the bundle's bands at `scale`
    (only `variants`' bands, when given: a cut that ran some variants). ValueError when the bundle has no bands at
    that scale, or the board lacks a banded variant or metric."""
    section = read(paper, papers_dir).get(scale)
    if section is None:
        raise ValueError(f"{bands_file(paper, papers_dir)} has no {scale} bands: run the bundle at full seeds, "
                         f"then `harness bands {paper} --scale {scale} --write`")  # fmt: skip
    rows = {r["variant"]: r for r in board["rows"] if r["task"] == section.get("task", board["rows"][0]["task"])}
    lines, outside = [], 0
    for variant, metrics in section["bands"].items():
        if variants is not None and variant not in variants:
            continue
        if variant not in rows:
            raise ValueError(f"{paper} [{scale}]: the leaderboard has no {variant} on {section.get('task')}, "
                             f"which {BANDS_FILE} bands")  # fmt: skip
        row = rows[variant]
        for metric, (low, high) in metrics.items():
            if metric not in row["metrics"]:
                raise ValueError(f"{paper} [{scale}]: {variant} has no {metric}, which {BANDS_FILE} bands")
            for seed, value in zip(row["seeds"], row["metrics"][metric]["values"], strict=True):
                ok = low <= value <= high
                outside += not ok
                lines.append(f"{'ok ' if ok else 'OUT'} {paper} [{scale}] {variant} {metric} seed {seed}: "
                             f"{value:.3f} {'in' if ok else 'outside'} [{low:g}, {high:g}]")  # fmt: skip
    return lines, outside
