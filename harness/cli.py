"""The `harness` command: what Snakemake rules call, plus validate / leaderboard for users.

harness validate [PAPER ...] [--scale S]     check bundles without running anything
harness leaderboard [PAPER ...] [--scale S]  ranked runs, mean +/- spread over seeds
harness tables @SET [--write README.md]      README result tables from results/ (with commit and machine)
harness bands PAPER [--write]               check results against the bundle's metric bands (or write them)
harness compare EVAL_A EVAL_B                two evaluations side by side; says when protocols differ
harness world data|model|convert ...         build the CPU world (called by Snakemake)
harness fetch [PAPER ...] --scale S [--pin]  download the hub items of a scale for offline compute nodes
harness train|evaluate|track|summarize ...   one job of the DAG (called by Snakemake)
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from harness.config.errors import ConfigError
from harness.config.load import list_papers
from harness.fetching import add_fetch_command
from harness.layout import PAPERS
from harness.reporting.commands import add_commands


def _seed_list(text: str) -> list[int]:
    """`0,1,2` -> [0, 1, 2].

    >>> _seed_list("0, 2")
    [0, 2]
    """
    try:
        return [int(s) for s in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _plan(args):
    from harness.plan import Plan

    return Plan([args.paper], args.scale, args.papers_dir, seeds=args.seeds, variants=args.variants)


def _run_args(p: argparse.ArgumentParser, stage: bool = False) -> None:
    p.add_argument("--paper", required=True)
    p.add_argument("--scale", default="toy")
    p.add_argument("--variant", required=True)
    p.add_argument("--seed", type=int, required=True)
    if stage:
        p.add_argument("--stage", type=int, required=True)


def cmd_validate(args) -> int:
    names = args.papers or list_papers(args.papers_dir)
    if not names:
        print(f"no paper bundles in {args.papers_dir}", file=sys.stderr)
        return 1
    from harness.validate import validate_paper, validation_site

    cluster, site = validation_site(args.cluster, args.scale)
    failed = 0
    for name in names:
        try:
            print("\n".join(validate_paper(name, args.papers_dir, args.scale, cluster, site, not args.papers)))
        except ConfigError as e:
            failed += 1
            print(f"ERR {e}", file=sys.stderr)
    return 1 if failed else 0


def cmd_world(args) -> int:
    from harness import layout
    from harness.config import read

    if args.what == "data":
        from harness.world.generators import GENERATORS
        from harness.world.splits import write_rows
        from harness.world.tokenizer import train_tokenizer

        cfg = read.load_component("datasets", args.name, read.CONFIGS / "datasets", "dataset")
        if not cfg.generated:
            print(f"error: dataset {args.name!r} has source {cfg.source!r}: it is read from the hub", file=sys.stderr)
            return 2
        out, generator = Path(layout.data_dir(args.name)), GENERATORS.get(cfg.source)
        spec = getattr(cfg, generator.spec_field)
        splits = generator.make_splits(spec)
        write_rows(splits, out)
        write_rows(generator.extra_files(spec), out)
        train_tokenizer([generator.tokenizer_text(r) for r in splits["pretrain"]], Path(layout.tokenizer_dir(args.name)),
                        isolated=generator.stops)  # fmt: skip
        print(f"wrote {out} and {layout.tokenizer_dir(args.name)}")
    elif args.what == "convert":
        from harness.world.packaged import convert

        cfg = read.load_component("models", args.name, read.CONFIGS / "models", "model")
        if cfg.source != "package":
            print(f"error: model {args.name!r} has source {cfg.source!r}, not package", file=sys.stderr)
            return 2
        convert(cfg.package, cfg.file, Path(layout.model_dir(args.name)))
    else:
        from harness.world.toy_model import SkillError, pretrain

        cfg = read.load_component("models", args.name, read.CONFIGS / "models", "model")
        data = Path(layout.data_dir(cfg.dataset))
        init = None
        if cfg.toy.init_from is not None:
            init = Path(layout.model_dir(cfg.toy.init_from))
            if not (init / layout.PRETRAIN_SUMMARY).is_file():
                print(f"error: configs/models/{args.name}.yaml: toy.init_from: {cfg.toy.init_from!r} is not built "
                      f"({init}): harness world model {cfg.toy.init_from}", file=sys.stderr)  # fmt: skip
                return 2
        try:
            pretrain(cfg.toy, data, Path(layout.tokenizer_dir(cfg.dataset)), Path(layout.model_dir(args.name)),
                     environment=_world_environment(cfg.dataset, data), init_dir=init)  # fmt: skip
        except SkillError as e:
            print(f"error: configs/models/{args.name}.yaml: toy.skill: {e}", file=sys.stderr)
            return 2
    return 0


def _world_environment(dataset: str, data: Path):
    """A tool world's environment factory (its generator's ENVIRONMENT, with the world's corpus when it searches
    one), for the skill checks of a base pre-trained on it; None for other worlds."""
    from harness.config import read
    from harness.environments import ENVIRONMENTS
    from harness.world.generators import GENERATORS

    cfg = read.load_component("datasets", dataset, read.CONFIGS / "datasets", "dataset")
    name = GENERATORS.get(cfg.source).environment
    if name is None:
        return None
    factory = ENVIRONMENTS.get(name)
    return factory.build(**({"corpus": str(data / "corpus.jsonl")} if factory.reads_corpus else {}))


def _remote(args, resources, folder: Path, name: str, setup: list[str] | None = None, key: str | None = None) -> bool:
    """Submit this very command to the cluster and wait, when the cluster config says so (`setup`: shell lines
    the job script runs first; `key`: the job's fingerprint, so a restarted head waits for its live job)."""
    from harness.config.load import load_cluster

    cluster = load_cluster(args.cluster)
    if cluster.launcher == "local":
        return False
    from harness.launch import submit_and_wait

    # the job computes: this head looked it up, and holds its key's lock until the job is done (reuse.claim)
    argv = ["--cluster", "local", "--no-reuse", "--threads", str(resources.cpus_per_task)]
    argv += _without(args.argv, "--cluster", "--threads")
    submit_and_wait(main, argv, resources, cluster, folder, name, setup, key)
    return True


def _without(argv: list[str], *options: str) -> list[str]:
    """`argv` minus the given options and their values.

    >>> _without(["--cluster", "slurm", "--threads", "2", "train", "--seed", "0"], "--cluster", "--threads")
    ['train', '--seed', '0']
    """
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in options:
            skip = True
        elif not any(a.startswith(o + "=") for o in options):
            out.append(a)
    return out


def cmd_train(args) -> int:
    from harness import reuse

    plan = _plan(args)
    run = plan.run(args.paper, args.variant, args.seed)
    key = reuse.stage_key(plan, run, args.stage) if args.reuse else None
    with reuse.claim(key, f"stage {args.stage} of {run.dir}"):  # an identical job started beside this one: wait
        if key is not None and reuse.reuse_stage(plan, run, args.stage):  # an identical stage finished elsewhere
            return 0
        _train(args, plan, run)
    return 0


def _train(args, plan, run) -> None:
    """Compute stage `args.stage` of `run`: here, or as a SLURM job (then that job records it)."""
    from harness import reuse, serve
    from harness.config.load import load_cluster
    from harness.layout import stage_dir
    from harness.stages import run_stage

    stage = plan.papers[args.paper].variants[args.variant].stages[args.stage]
    folder = Path(stage_dir(run, args.stage), "slurm")
    root = _offline(args) if plan.stage_hub_inputs(run, args.stage) else None
    name = f"train.{run.paper}.{run.variant}.s{run.seed}.{args.stage}"
    server = plan.papers[args.paper].server_resources  # a stage with vllm_mode: server gets a vLLM server job
    model, cluster = plan.model_after(run, args.stage), load_cluster(args.cluster)
    base = plan.papers[args.paper].models[plan.papers[args.paper].variants[args.variant].model]
    if root is not None and base.source == "hub" and model == base.hub_id:  # the server node is offline too
        from harness.offline import local_model

        model = local_model(base.hub_id, base.revision, root)
    with serve.for_stage(stage, model, server, cluster, folder, name) as setup:
        if _remote(args, stage.resources, folder, name, setup, plan.stage_fingerprint(run, args.stage)):
            return
    job = plan.stage_job(run, args.stage)
    if root is not None:
        from harness.offline import offline_stage

        job = offline_stage(job, base, root, {n: plan.papers[args.paper].models[n] for n in job.models})
    reuse.detach(job.dir)  # files linked from (or to) another run's folder: this job writes its own
    run_stage(job)
    reuse.record_stage(plan, run, args.stage)


def _offline(args) -> Path:
    """A job reading hub items: this process, and the SLURM job it submits, read the hub cache only."""
    from harness.config.load import load_cluster
    from harness.offline import cache_root, go_offline

    return go_offline(cache_root(load_cluster(args.cluster)))


def cmd_evaluate(args) -> int:
    from harness import layout, reuse

    plan = _plan(args)
    run = plan.run(args.paper, args.variant, args.seed)
    if (args.stage is None) != (args.step is None):
        print("error: --stage and --step go together (a checkpoint saved during training)", file=sys.stderr)
        return 2
    if args.stage is None:
        model, out, name = plan.final_model(run), Path(layout.eval_file(run)).parent, "eval"
    else:
        model = layout.snapshot_dir(run, args.stage, args.step)
        out, name = (
            Path(layout.checkpoint_eval_file(run, args.stage, args.step)).parent,
            f"eval{args.stage}.{args.step}",
        )
        if not Path(model).is_dir():
            steps = plan.snapshot_steps(run, args.stage)
            print(f"error: no model saved at step {args.step} of stage {args.stage} ({model}); "
                  f"this run saves steps {steps} (scales.{args.scale}.eval_checkpoints)", file=sys.stderr)  # fmt: skip
            return 2
    content = reuse.eval_key(plan, run, args.stage, args.step) if args.reuse else None
    with reuse.claim(content, f"the evaluation in {out}"):  # an identical job started beside this one: wait
        if content is not None and reuse.reuse_eval(plan, run, args.stage, args.step, content):  # finished elsewhere
            return 0
        _evaluate(args, plan, run, model, out, name)
    return 0


def _evaluate(args, plan, run, model: str, out: Path, name: str) -> None:
    """Evaluate `model` into `out`: here, or as a SLURM job (then that job records it)."""
    from harness import layout, reuse
    from harness.evaluation.evaluate import evaluate

    rp = plan.papers[args.paper]
    root = _offline(args) if plan.eval_hub_inputs(run, model) else None
    key = (
        plan.eval_fingerprint(run)
        if args.stage is None
        else plan.checkpoint_eval_fingerprint(run, args.stage, args.step)
    )
    if _remote(args, rp.eval_resources, out / "slurm", f"{name}.{run.paper}.{run.variant}.s{run.seed}", key=key):
        return
    data = layout.data_dir(rp.dataset_name) if rp.dataset.generated else None
    reuse.detach(out)  # as a training job does
    base = rp.models[rp.variants[args.variant].model]
    if root is not None and base.source == "hub" and model == base.hub_id:
        from harness.offline import local_model

        model = local_model(base.hub_id, base.revision, root)
    if rp.eval.environment is not None:  # a tool world's suite: episodes, not lm-eval
        from harness.evaluation.episodes import evaluate_episodes, fetched_questions

        questions = fetched_questions(rp.datasets, rp.eval, root) if rp.eval.dataset else None
        result = evaluate_episodes(model, rp.eval, run.seed, out, data, questions)
    else:
        judges = plan.judge_models(args.paper)
        if root is not None:  # hub judges from the cache, as the model
            from harness.offline import local_model

            judges |= {n: local_model(rp.models[n].hub_id, rp.models[n].revision, root) for n in judges
                       if rp.models[n].source == "hub"}  # fmt: skip
        result = evaluate(model, rp.eval, run.seed, out, data, hub_root=root, models=judges)
    from harness.evaluation.results import one_line_metrics

    print(one_line_metrics(result))
    reuse.record_eval(plan, run, args.stage, args.step)


def cmd_track(args) -> int:
    from harness.reporting.tracking import track_run

    plan = _plan(args)
    track_run(plan, plan.run(args.paper, args.variant, args.seed))
    return 0


def cmd_summarize(args) -> int:
    from harness.reporting.leaderboard import summarize_paper

    summarize_paper(_plan(args), args.paper)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="harness", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--papers-dir", type=Path, default=Path(os.environ.get("HARNESS_PAPERS", PAPERS)))
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--cluster", default="local", help="configs/cluster/<name>.yaml: where train/evaluate run")
    ap.add_argument(
        "--no-reuse",
        dest="reuse",
        action="store_false",
        help="train/evaluate: compute the job even when an identical one finished (harness/reuse.py)",
    )
    ap.add_argument("--seeds", type=_seed_list, default=None,
                    help="comma-separated seeds run instead of each scale's (Snakemake: --config seeds=[0,1])")  # fmt: skip
    ap.add_argument("--variants", type=lambda t: [v for v in t.split(",") if v], default=None,
                    help="comma-separated variants, the only ones run (Snakemake: --config variants=[a,b])")  # fmt: skip
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("validate", help="check paper bundles without running anything")
    p.add_argument("papers", nargs="*")
    p.add_argument("--scale", default=None, help="one scale (default: every scale a bundle defines)")
    p.set_defaults(fn=cmd_validate)

    add_commands(sub)  # leaderboard, report, tables, bands, ui, compare (harness/reporting/commands.py)

    p = sub.add_parser("world", help="build the CPU world (datasets + tokenizer, a toy model, a packaged model)")
    p.add_argument("what", choices=["data", "model", "convert"])
    p.add_argument("name")
    p.set_defaults(fn=cmd_world)

    for name, fn, stage in [("train", cmd_train, True), ("evaluate", cmd_evaluate, False), ("track", cmd_track, False)]:
        p = sub.add_parser(name, help=f"{name} one run (a Snakemake job)")
        _run_args(p, stage)
        p.set_defaults(fn=fn)
        if name == "evaluate":
            p.add_argument("--stage", type=int, default=None, help="with --step: a model saved during training")
            p.add_argument("--step", type=int, default=None)

    add_fetch_command(sub)  # fetch (harness/fetching.py)

    p = sub.add_parser("summarize", help="aggregate a paper's runs into its leaderboard (a Snakemake job)")
    p.add_argument("--paper", required=True)
    p.add_argument("--scale", default="toy")
    p.set_defaults(fn=cmd_summarize)

    argv = list(sys.argv[1:] if argv is None else argv)
    args = ap.parse_args(argv)
    args.argv = argv  # a job submitted to a cluster runs this same command there
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        return args.fn(args)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
