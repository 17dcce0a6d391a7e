"""The DAG of the shipped papers dry-runs at both scales, and bad bundles stop Snakemake at start."""

from __future__ import annotations

import re
import shutil

import pytest

from harness.config.errors import ConfigError
from harness.config.load import list_papers, load_paper, load_paper_config, paper_file
from harness.layout import CONFIGS
from tests.conftest import ROOT, run_snakemake, write_bundle


@pytest.fixture
def shipped(tmp_path):
    shutil.copytree(ROOT / "papers", tmp_path / "papers")
    return tmp_path


@pytest.mark.parametrize("scale", [p.stem for p in (CONFIGS / "scales").glob("*.yaml")])
def test_shipped_papers_dry_run(shipped, scale):
    out = run_snakemake(shipped, "-n", config=(f"scale={scale}", "papers=all")).stdout
    at_scale = [p for p in list_papers(ROOT / "papers") if scale in load_paper_config(paper_file(p)).scales]
    assert at_scale
    if scale == "toy":  # every bundle defines the toy scale
        assert at_scale == list_papers(ROOT / "papers")
    if scale == "paper":  # and its paper scale, unless it says why it has none (a theory paper)
        theory = [p for p in list_papers(ROOT / "papers") if load_paper_config(paper_file(p)).paper.no_paper_scale]
        assert sorted(at_scale + theory) == list_papers(ROOT / "papers")
    for paper in list_papers(ROOT / "papers"):
        assert (f"results/runs/{paper}/{scale}/leaderboard.json" in out) == (paper in at_scale), paper
    assert "evaluate_run" in out


def test_small_real_set_dry_run_converts_the_packaged_model_and_builds_word_problems(shipped):
    out = run_snakemake(shipped, "-n", config=("scale=small-real", "papers=@small-real")).stdout
    assert "convert_model" in out and "build_dataset" in out and "pretrain_model" not in out
    for paper in ("ttrl-majority-vote", "negative-sample-reinforcement", "one-shot-rlvr"):
        assert f"results/runs/{paper}/small-real/leaderboard.json" in out
    assert "results/world/models/smollm2-135m-instruct/source.json" in out
    assert "results/world/data/word-problems/test.jsonl" in out


def test_calibration_bundles_dry_run_from_their_own_directory(tmp_path):
    # configs/calibration/ holds bundles like papers/ does, run with papers_dir= (README, "Calibration")
    shutil.copytree(CONFIGS / "calibration", tmp_path / "papers")
    out = run_snakemake(tmp_path, "-n").stdout
    for world in ("toy-arith", "toy-arith-weak", "toy-chain"):
        assert f"results/runs/grpo-budget-{world}/toy/leaderboard.json" in out
        assert f"results/world/models/{world}/pretrain.json" in out
    assert "results/runs/ttrl-majority-vote" not in out


def test_drafts_validate_at_every_scale_they_define():
    """A draft is not yet a bundle (drafts/README.md), but what it defines loads and checks as a bundle's would."""
    drafts = ROOT / "drafts"
    names = list_papers(drafts)
    assert names
    for name in names:
        for scale in load_paper_config(paper_file(name, drafts)).scales:
            assert load_paper(name, scale, papers_dir=drafts).variants, (name, scale)


def test_toy_dry_run_builds_the_world_first(shipped):
    out = run_snakemake(shipped, "-n").stdout
    assert "build_dataset" in out and "pretrain_model" in out


def test_plain_run_covers_the_default_set_and_sets_are_selectable(shipped):
    out = run_snakemake(shipped, "-n").stdout
    assert "runs/ttrl-majority-vote/toy/leaderboard.json" in out and "runs/rover/" not in out
    rlvr = run_snakemake(shipped, "-n", config=("papers=@rlvr",)).stdout
    assert "runs/rover/toy/leaderboard.json" in rlvr and "runs/ttrl-majority-vote/" not in rlvr


def test_bad_bundle_stops_snakemake_before_any_job(tmp_path):
    write_bundle(
        tmp_path / "papers",
        "bad",
        "paper: {title: bad}\nvariants:\n  v:\n    stages: [{kind: grpo, rewards: [{name: exact_matc}]}]\nscales: {toy: {}}\n",
    )
    proc = run_snakemake(tmp_path, check=False)
    assert proc.returncode != 0
    msg = proc.stdout + proc.stderr
    assert "papers/bad/paper.yaml" in msg and "variants.v.stages.0.rewards.0.name" in msg and "exact_match" in msg
    assert not (tmp_path / "results").exists()


def test_slurm_profile_dry_run_shows_resources(shipped):
    """`snakemake --profile slurm -n` lists every job with what it asks of SLURM (no cluster needed)."""
    out = run_snakemake(shipped, "-n", profile="slurm", config=("scale=paper",)).stdout
    jobs = {}
    for block in re.split(r"\n\[[^\]]+\]\n", out):  # each job's block starts with a [timestamp] line
        m = re.match(r"(?:local)?rule (\w+):", block)
        if m:
            jobs.setdefault(m[1], []).append(block)
    assert all("gpus=8" in b and "runtime=1440" in b and "cpus_per_task=12" in b for b in jobs["train_stage"])
    assert all("gpus=1" in b for b in jobs["evaluate_run"])
    assert not any("gpus=" in b for b in jobs["track_run"])  # light steps ask for nothing: head node


@pytest.mark.parametrize(
    "meta, scales, message",
    [
        ('no_paper_scale: " "', "{toy: {}}", "paper.no_paper_scale: say why the bundle has no paper scale"),
        ('no_paper_scale: "a theory paper"', "{toy: {}, paper: {}}", "paper.no_paper_scale: the bundle defines scales"),
    ],
)
def test_a_bundle_without_a_paper_scale_says_why_and_defines_none(tmp_path, meta, scales, message):
    write_bundle(tmp_path, "theory", f"paper: {{title: t, {meta}}}\nvariants: {{base: {{}}}}\nscales: {scales}\n")
    with pytest.raises(ConfigError, match=message):
        load_paper("theory", "toy", papers_dir=tmp_path)


def test_theory_bundles_say_why_they_have_no_paper_scale():
    theory = [p for p in list_papers() if load_paper_config(paper_file(p)).paper.no_paper_scale]
    assert "kl-bayes" in theory
    assert all("paper" not in load_paper_config(paper_file(p)).scales for p in theory)


def test_validating_every_bundle_at_a_scale_passes_over_those_without_it_as_the_dag_does():
    """`harness validate --scale paper` (every bundle) passes over a theory bundle with its reason and succeeds;
    naming that bundle at that scale is refused with the same reason."""
    import subprocess
    import sys

    every = subprocess.run([sys.executable, "-m", "harness", "validate", "--scale", "paper"], capture_output=True,
                           text=True, cwd=ROOT, timeout=300)  # fmt: skip
    assert every.returncode == 0, every.stderr[-2000:]
    assert "skip kl-bayes [paper]: not defined (it defines toy; paper.no_paper_scale: a theory paper" in every.stdout
    assert "ok  one-shot-rlvr [paper]" in every.stdout and "ERR" not in every.stderr
    named = subprocess.run([sys.executable, "-m", "harness", "validate", "kl-bayes", "--scale", "paper"],
                           capture_output=True, text=True, cwd=ROOT, timeout=300)  # fmt: skip
    assert named.returncode == 1
    assert "ERR papers/kl-bayes/paper.yaml: scales: scale 'paper' not defined" in named.stderr
    assert "paper.no_paper_scale: a theory paper" in named.stderr
