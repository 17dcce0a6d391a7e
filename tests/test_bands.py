"""Metric bands (harness/reporting/bands.py): written from a leaderboard, checked against a later one, each number
outside its band named; a malformed or stale bands.yaml is refused naming its file and key."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness.cli import main
from harness.config.errors import ConfigError
from harness.layout import PAPERS
from harness.validate import validate_paper, validation_site


def row(variant: str, pass1: list[float], pass8: list[float], seeds=(0, 1, 2)) -> dict:
    def m(values):
        return {"mean": sum(values) / len(values), "std": 0.0, "values": values}

    return {"variant": variant, "task": "toy_arith", "model": "toy-arith", "seeds": list(seeds),
            "protocol": {"n_samples": 8}, "metrics": {"pass@1": m(pass1), "maj@8": m(pass1), "pass@8": m(pass8)}}  # fmt: skip


def put(results: Path, rows: list[dict]) -> None:
    f = results / "runs" / "demo" / "toy" / "leaderboard.json"
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(json.dumps({"paper": "demo", "scale": "toy", "rows": rows, "claims": [], "made": {"commit": "abc"}}))


@pytest.fixture
def bundle(tmp_path) -> tuple[Path, Path]:
    papers = tmp_path / "papers"
    (papers / "demo").mkdir(parents=True)
    shutil.copy(PAPERS / "ttrl-majority-vote" / "paper.yaml", papers / "demo" / "paper.yaml")
    return papers, tmp_path / "results"


def test_bands_written_from_a_full_run_pass_it_and_name_a_one_seed_cut_that_moved(bundle, capsys):
    papers, results = bundle
    put(results, [row("gold_grpo", [0.81, 0.82, 0.80], [0.92, 0.94, 0.93]), row("base", [0.78, 0.79, 0.77],
                                                                                 [0.93, 0.92, 0.94])])  # fmt: skip
    common = ["--papers-dir", str(papers), "bands", "demo", "--results", str(results)]
    assert main(common + ["--write"]) == 0
    written = (papers / "demo" / "bands.yaml").read_text()
    assert written.startswith("# Metric bands of this bundle's results, written by `harness bands demo")
    assert "gold_grpo:\n      pass@1: [0.77, 0.85]" in written
    assert main(common) == 0  # the run the bands came from lies in them
    assert "ok  demo [toy] base pass@1 seed 2: 0.770 in [0.74, 0.82]" in capsys.readouterr().out

    # a one-seed cut on a world that moved: the base saturated (as a fixed-step base did on another machine)
    put(results, [row("gold_grpo", [0.83], [0.95], seeds=[0]), row("base", [0.99], [1.0], seeds=[0])])
    assert main(common) == 1
    captured = capsys.readouterr()
    assert "OUT demo [toy] base pass@1 seed 0: 0.990 outside [0.74, 0.82]" in captured.out
    assert "ok  demo [toy] gold_grpo pass@1 seed 0: 0.830 in [0.77, 0.85]" in captured.out
    assert "OUT demo [toy] base pass@8 seed 0: 1.000 outside [0.89, 0.97]" in captured.out
    assert "3 number(s) outside their bands" in captured.err  # the base's pass@1, maj@8 and pass@8

    put(results, [row("base", [0.78], [0.93], seeds=[0])])  # a cut of one variant: checked on its own bands only
    assert main(common[:2] + ["--variants", "base"] + common[2:]) == 0
    assert "gold_grpo" not in capsys.readouterr().out
    assert main(common) == 2  # without saying so, a missing variant is an error
    assert "the leaderboard has no gold_grpo on toy_arith, which bands.yaml bands" in capsys.readouterr().err


def test_a_bundle_without_bands_or_with_bad_ones_is_refused(bundle, capsys):
    papers, results = bundle
    put(results, [row("base", [0.78], [0.93], seeds=[0])])
    assert main(["--papers-dir", str(papers), "bands", "demo", "--results", str(results)]) == 2
    assert "bands.yaml has no toy bands: run the bundle at full seeds" in capsys.readouterr().err

    site = validation_site("local", "toy")
    file = papers / "demo" / "bands.yaml"
    file.write_text("toy:\n  bands:\n    base: {pass@1: [0.9, 0.1]}\n")
    with pytest.raises(ConfigError, match=r"demo/bands.yaml: toy.bands.base.pass@1: a band \[low, high\]"):
        validate_paper("demo", papers, "toy", *site)
    file.write_text("toy:\n  bands:\n    bsae: {pass@1: [0.7, 0.8]}\n")
    with pytest.raises(ConfigError, match=r"demo/bands.yaml: toy.bands.bsae: not a variant of demo at scale toy"):
        validate_paper("demo", papers, "toy", *site)
    file.write_text("tiny:\n  bands: {}\n")
    with pytest.raises(ConfigError, match=r"demo/bands.yaml: tiny: not a scale of demo \(its scales: toy, "):
        validate_paper("demo", papers, None, *site)
