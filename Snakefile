# The reproduction DAG: world -> train (stages) -> evaluate -> track -> summarize.
#   snakemake --cores 2                          the default paper set (papers/sets.yaml), CPU default (toy scale)
#   snakemake -n --config scale=paper            dry-run the paper scale (scale=small-real: SmolLM2-135M on CPU)
#   snakemake --cores 2 --config papers=a,b      only some papers (papers=@rlvr: a named set; papers=all: every one)
#   snakemake --cores 2 --config seeds=[0] variants=[base,gold]   a quick cut: one seed, some variants
#   snakemake --cores 2 --config reuse=false     compute every job, even one identical to a finished one (harness/reuse.py)
#   snakemake --profile slurm                    train/evaluate on SLURM via submitit (profiles/slurm)
# Logic lives in harness/ (plan.py); the rules only wire paths to `python -m harness` commands.
import re
import sys

from harness.config.errors import ConfigError
from harness.config.load import load_cluster
from harness.layout import CONFIGS
from harness.memory import check_paper
from harness.config.selection import select_papers, workflow_config
from harness.plan import Plan, per_job


try:
    CONFIG = workflow_config(config)  # --config keys (harness.config.selection.WORKFLOW_CONFIG); a misspelt one is refused
    SCALE = CONFIG.get("scale", "toy")
    CLUSTER = CONFIG.get("cluster", "local")  # configs/cluster/<name>.yaml; the slurm profile sets `slurm`
    SEEDS = CONFIG.get("seeds")  # None: each scale's seeds
    VARIANTS = CONFIG.get("variants")  # None: every variant
    PY = sys.executable
    HARNESS = (f"{PY} -m harness --papers-dir {CONFIG.get('papers_dir', 'papers')} --cluster {CLUSTER}"
               + (f" --seeds {','.join(map(str, SEEDS))}" if SEEDS is not None else "")
               + (f" --variants {','.join(VARIANTS)}" if VARIANTS is not None else "")
               + ("" if CONFIG.get("reuse", True) else " --no-reuse"))
    SITE = load_cluster(CLUSTER)
    PAPERS_DIR = CONFIG.get("papers_dir", "papers")
    PLAN = Plan(select_papers(CONFIG.get("papers"), PAPERS_DIR, SCALE), SCALE, PAPERS_DIR, seeds=SEEDS, variants=VARIANTS)
    # The memory plan of every GPU stage, checked against the site's GPUs before anything is submitted.
    MEMORY = [(paper, s) for paper, rp in PLAN.papers.items()
              for s in check_paper(rp, SITE.gpu_mem_gb, f"configs/cluster/{CLUSTER}.yaml", SITE.node_mem_gb) if s.on_gpu]
except (ConfigError, FileNotFoundError) as e:
    sys.exit(f"Invalid configuration, nothing was run:\n  {e}")
if MEMORY:
    print(f"memory plan (GPUs of {SITE.gpu_mem_gb:g} GiB, configs/cluster/{CLUSTER}.yaml):", file=sys.stderr)
    for line in dict.fromkeys(f"  {paper}: {s.line()}" for paper, s in MEMORY):
        print(line, file=sys.stderr)

wildcard_constraints:
    seed=r"\d+",
    stage=r"\d+",
    step=r"\d+",
    paper=r"[A-Za-z0-9_.-]+",
    scale="|".join(re.escape(p.stem) for p in sorted((CONFIGS / "scales").glob("*.yaml"))),  # a slug may hold "-"
    variant=r"[A-Za-z0-9_.-]+",


# Light steps stay on the head node; train and evaluate jobs go where CLUSTER says.
localrules: all, build_dataset, pretrain_model, convert_model, track_run, summarize_paper, report_paper, report_index


include: "workflows/world.smk"
include: "workflows/runs.smk"
include: "workflows/hub.smk"


rule all:
    input:
        PLAN.targets(),
        "results/reports/index.html",
