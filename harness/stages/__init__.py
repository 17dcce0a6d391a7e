"""Stage kinds: the registry that config checks, the planner and the `harness train` job read.

A stage kind is one module here (its hyper-parameters, its declaration `KIND` and its entry point) plus
its line in `_KINDS` below. Everything the rest of the harness needs to know about kinds is derived from
the declarations (harness/stages/kind.py), imported without torch; a kind's heavy code (TRL, torch) is
imported when a stage of that kind runs.

    kind.py        StageKind (the declaration) and StageJob (what a running stage gets)
    args.py        hyper-parameters every trainer-backed kind has; `ours()` marks those kept back from TRL
    plumbing.py    shared trainer plumbing: rows, TRL's common args, batch layout, checkpoints, rewards,
                   callbacks, the train-save-summarize loop
    data.py        the rows a stage sees (splits, data_args, paraphrases)
    curation.py    keep the rows the starting model finds hardest
    trainers/      TRL trainer subclasses (torch at import)
    grpo.py sft.py dpo.py reward_model.py process_reward_model.py generate.py multiturn.py   the kinds
"""

from __future__ import annotations

from harness.registry import Registry
from harness.stages import dpo, generate, grpo, multiturn, process_reward_model, reward_model, sft
from harness.stages.kind import DATA, POLICY, SCORER, StageJob, StageKind

STAGES: Registry[StageKind] = Registry("stage kind")
for _module in (grpo, sft, dpo, reward_model, process_reward_model, generate, multiturn):
    STAGES.register(_module.KIND.name)(_module.KIND)


def kinds(**where) -> tuple[str, ...]:
    """Names of the registered kinds whose declaration has the given attribute values, in registration order.

    >>> kinds(makes=POLICY)
    ('grpo', 'sft', 'dpo', 'multiturn_grpo')
    """
    return tuple(n for n, k in STAGES.items() if all(getattr(k, a) == v for a, v in where.items()))


def making_scorer(scorer: str) -> tuple[str, ...]:
    """Kinds that can make the scorer `scorer` (harness.layout.SCORERS)."""
    return tuple(n for n, k in STAGES.items() if k.makes == SCORER and scorer in k.scorers)


def run_stage(job: StageJob) -> dict:
    """Run one stage with its kind's entry point; returns the summary it wrote to train.json."""
    return STAGES.get(job.stage.kind).run(job)


__all__ = ["DATA", "POLICY", "SCORER", "STAGES", "StageJob", "StageKind", "kinds", "making_scorer", "run_stage"]
