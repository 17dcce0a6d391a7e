"""The reward_model stage with `num_groups` > 1: a mixture of reward models fitted by hard EM (MaxMin-RLHF).

Every pair carries its labeler (`labeler`, written by a judge such as user_mixture); each labeler belongs
to one latent group, and each group gets its own reward model:

  init    one reward model on every pair; labeler u's mean pair log-likelihood
          l_u = mean over u's pairs of log sigmoid(r(chosen) - r(rejected)); the labelers are split into
          `num_groups` by 1-D k-means on l_u (the labelers the pooled model explains worst seed a group);
  M-step  per group, TRL's RewardTrainer from the stage's starting model on that group's labelers' pairs;
  E-step  each labeler moves to the group whose model gives its pairs the highest total log-likelihood;
repeated `em_iterations` times (None: 3) or until no labeler moves. Writes `model/group<k>/` (a scorer
each) and `model/mixture.json`: the groups' labelers, per-round log-likelihood and moves, and each
model's score mean and std over its own training pairs (worst_group_reward standardizes with them).

Choices the abstract leaves open: assignments are hard (each labeler in one group); the initial split
comes from the pooled model, not at random; each M-step retrains from the starting model rather than
continuing the last round's. Every sub-training resumes from its own checkpoints after a restart.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

from harness.layout import CHECKPOINTS, MIXTURE_FILE, MODEL, STAGE_SUMMARY, SUBFIT_DONE, write_atomic
from harness.stages.kind import UPSTREAM_SAMPLES, StageJob


def kmeans_1d(values: list[float], k: int, rounds: int = 50) -> list[int]:
    """Cluster indices (0 = lowest centre) of 1-D `values`, centres started at evenly spaced quantiles.

    >>> kmeans_1d([-0.1, -0.2, -0.15, -2.0, -1.8], 2)
    [1, 1, 1, 0, 0]
    """
    order = sorted(values)
    centres = [order[round(i * (len(order) - 1) / max(k - 1, 1))] for i in range(k)]
    for _ in range(rounds):
        assign = [min(range(k), key=lambda c: (abs(v - centres[c]), c)) for v in values]
        members = [[v for v, a in zip(values, assign, strict=True) if a == c] for c in range(k)]
        new = [sum(m) / len(m) if m else centres[c] for c, m in enumerate(members)]  # an empty cluster keeps its centre
        if new == centres:
            break
        centres = new
    return assign


def pair_loglik(scorer, rows: list[dict]) -> list[float]:
    """log sigmoid(r(chosen) - r(rejected)) of each pair under a scorer (harness.rewards.learned.LearnedReward)."""
    prompts = [r["prompt"] for r in rows]
    chosen = scorer([r["chosen"] for r in rows], prompts)
    rejected = scorer([r["rejected"] for r in rows], prompts)
    return [-_softplus(r - c) for c, r in zip(chosen, rejected, strict=True)]


def e_step(logliks: list[list[float]], labelers: list[int]) -> dict[int, int]:
    """Each labeler's group: the model under which its pairs' total log-likelihood is highest (ties: lowest k).

    `logliks[k][i]`: pair i under model k; `labelers[i]`: pair i's labeler.

    >>> e_step([[-0.1, -2.0, -0.2], [-1.0, -0.1, -0.3]], [0, 1, 0])
    {0: 0, 1: 1}
    """
    totals: dict[int, list[float]] = {}
    for i, u in enumerate(labelers):
        t = totals.setdefault(u, [0.0] * len(logliks))
        for k, ll in enumerate(logliks):
            t[k] += ll[i]
    return {u: max(range(len(t)), key=lambda k: (t[k], -k)) for u, t in sorted(totals.items())}


def train_mixture(job: StageJob, args_type: type) -> dict:
    """Fit the mixture (see the module docstring); returns the summary also written to train.json.
    `args_type`: the stage's args dataclass (which of its fields go to TRL)."""
    from harness.stages.generate import read_pairs
    from harness.stages.plumbing import checkpoint_key

    start, a = time.time(), job.stage.args
    stage, model_path, pairs_dir, seed, stage_dir, fingerprint = (job.stage, job.model, job.upstream[UPSTREAM_SAMPLES],
                                                                   job.seed, job.dir, checkpoint_key(job))  # fmt: skip
    k, rounds = int(a["num_groups"]), a.get("em_iterations") or 3
    data = read_pairs(pairs_dir)
    if "labeler" not in data.column_names:
        raise ValueError(f"{pairs_dir}: pairs carry no `labeler`; num_groups needs a judge that records one "
                         "(e.g. the user_mixture reward in the generate stage)")  # fmt: skip
    rows = data.to_list()
    labelers = [int(r["labeler"]) for r in rows]
    users = sorted(set(labelers))
    if len(users) < k:
        raise ValueError(f"num_groups {k}: the pairs come from only {len(users)} labelers")
    print(f"reward mixture: {k} groups over {len(users)} labelers, {len(rows)} pairs", flush=True)
    work = stage_dir / "em"
    pooled = _fit(stage, args_type, model_path, rows, seed, work / "init", fingerprint)
    ll = pair_loglik(pooled, rows)
    per_user = [sum(x for x, u2 in zip(ll, labelers, strict=True) if u2 == u) / labelers.count(u) for u in users]
    group = dict(zip(users, kmeans_1d(per_user, k), strict=True))
    history = [{"step": 0, "em/loglik": sum(ll) / len(ll), "em/moved": len(users)} | _sizes(group, k)]
    print(f"  init: pooled log-likelihood {history[0]['em/loglik']:.4f}; groups {_sizes(group, k)}", flush=True)
    for t in range(1, rounds + 1):
        models = []
        for g in range(k):
            mine = [r for r, u in zip(rows, labelers, strict=True) if group[u] == g]
            if not mine:
                raise ValueError(f"EM round {t}: group {g} has no labelers left; try fewer num_groups")
            models.append(_fit(stage, args_type, model_path, mine, seed, work / f"round{t}" / f"group{g}", fingerprint))
        logliks = [pair_loglik(m, rows) for m in models]
        new = e_step(logliks, labelers)
        moved = sum(new[u] != group[u] for u in users)
        best = [max(col) for col in zip(*logliks, strict=True)]
        history.append({"step": t, "em/loglik": sum(best) / len(best), "em/moved": moved} | _sizes(new, k))
        print(f"  round {t}: log-likelihood {history[-1]['em/loglik']:.4f}; {moved} labelers moved; "
              f"groups {_sizes(new, k)}", flush=True)  # fmt: skip
        final, trained = group, models  # the models were fitted to `group`: keep the pair consistent
        if moved == 0 or len(set(new.values())) < k:
            break
        group = new
    out = stage_dir / MODEL
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    stats = []
    for g, m in enumerate(trained):
        mine = [r for r, u in zip(rows, labelers, strict=True) if final[u] == g]
        scores = m([r["chosen"] for r in mine] + [r["rejected"] for r in mine], [r["prompt"] for r in mine] * 2)
        mean = sum(scores) / len(scores)
        std = (sum((s - mean) ** 2 for s in scores) / len(scores)) ** 0.5
        stats.append({"mean": mean, "std": std or 1.0, "labelers": [u for u in users if final[u] == g],
                      "pairs": len(mine)})  # fmt: skip
        shutil.copytree(m.path, out / f"group{g}")
    write_atomic(out / MIXTURE_FILE, json.dumps({"groups": stats, "history": history}, indent=1))
    summary = {"kind": stage.kind, "init_model": model_path, "seconds": time.time() - start,
               "num_groups": k, "groups": stats, "global_step": 0, "log_history": history}  # fmt: skip
    write_atomic(stage_dir / STAGE_SUMMARY, json.dumps(summary, indent=1))
    return summary


def _fit(stage, args_type: type, model_path: str, rows: list[dict], seed: int, folder: Path, fingerprint: str):
    """One reward model on `rows` in `folder` (resumed from its checkpoints; skipped when already done)."""
    import datasets
    from transformers import AutoTokenizer

    from harness.rewards.learned import LearnedReward
    from harness.stages.plumbing import common_args, complete_checkpoints, prepare_checkpoints
    from harness.stages.trainers.reward import reward_trainer

    model, done = folder / MODEL, folder / SUBFIT_DONE
    if not (done.exists() and json.loads(done.read_text()).get("fingerprint") == fingerprint):
        resume = prepare_checkpoints(folder / CHECKPOINTS, fingerprint)
        tokenizer = AutoTokenizer.from_pretrained(model_path)
        common = common_args(args_type, stage.args, seed, folder / CHECKPOINTS, stage.parallel)
        trainer = reward_trainer(model_path, datasets.Dataset.from_list(rows), common, tokenizer)
        trainer.add_callback(complete_checkpoints())
        trainer.train(resume_from_checkpoint=resume)
        trainer.save_model(str(model))
        tokenizer.save_pretrained(str(model))
        loss = [e["loss"] for e in trainer.state.log_history if "loss" in e]
        write_atomic(
            done, json.dumps({"fingerprint": fingerprint, "pairs": len(rows), "final_loss": loss[-1] if loss else None})
        )
    return LearnedReward(str(model))


def _sizes(group: dict[int, int], k: int) -> dict[str, int]:
    return {f"em/group{g}_labelers": sum(v == g for v in group.values()) for g in range(k)}


def _softplus(x: float) -> float:
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))
