"""Reading the hub cache offline: where it is, the environment that keeps a job off the network, the snapshot of a
pinned item, and what a training or evaluation job reads there (harness/hub.py fetches it all on the head node).

A job that uses hub items runs with `offline_env` (HF_HUB_OFFLINE=1, the caches pointing at the cache, no token) and
reads local folders only: `local_model` is the snapshot of the pinned commit (from_pretrained gets a path, never a
hub id), `local_dataset` the dataset repository's snapshot or a URL's pinned copy, `corpus_index` a corpus's built
index (harness/corpora.py); `offline_stage` hands a stage job all of them.
"""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from harness import files
from harness.config import read
from harness.config.components import DatasetConfig, ModelConfig
from harness.config.errors import FetchError
from harness.config.stage import GENERATED
from harness.rewards import models_read

if TYPE_CHECKING:
    from harness.config.schema import ClusterConfig, ResolvedPaper
    from harness.stages.kind import StageJob

COMMIT = re.compile(r"[0-9a-f]{40}")
TOKEN_VARS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
PIN_HINT = "run `harness fetch --pin` on a machine that reaches the Hugging Face hub (it writes the current commit)"


# ----------------------------------------------------------------------------- where the cache is


def cache_root(cluster: ClusterConfig | None = None) -> Path:
    """The hub cache: the cluster's `hub_cache`, else HF_HOME (harness/__init__.py sets the project's default)."""
    if cluster is not None and cluster.hub_cache:
        return Path(cluster.hub_cache).expanduser().resolve()
    return Path(os.environ["HF_HOME"]).expanduser().resolve()


def offline_env(root: Path) -> dict[str, str]:
    """The environment of a job that reads the hub cache `root` only (tokens are removed: see `go_offline`).

    >>> offline_env(Path("/shared/hf"))["HF_HUB_CACHE"], offline_env(Path("/shared/hf"))["HF_HUB_OFFLINE"]
    ('/shared/hf/hub', '1')
    """
    return {
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
        "HF_HOME": str(root),
        "HF_HUB_CACHE": str(root / "hub"),
        "HF_DATASETS_CACHE": str(root / "datasets"),
    }


def go_offline(root: Path) -> Path:
    """Make this process (and the SLURM jobs it submits, which inherit its environment) read `root` only.

    Called before any Hugging Face library is imported: they read these variables once, at import.
    """
    os.environ.update(offline_env(root))
    for var in TOKEN_VARS:
        os.environ.pop(var, None)
    return root


def repo_folder(root: Path, repo_type: str, repo_id: str) -> Path:
    return root / "hub" / f"{repo_type}s--{repo_id.replace('/', '--')}"


def snapshot(root: Path, repo_type: str, repo_id: str, revision: str | None, where: str = "") -> Path:
    """The cached snapshot folder of `repo_id` at `revision` (a commit, or a ref recorded under refs/)."""
    if not revision:
        raise FetchError(f"{repo_type} {repo_id} has no pinned revision{where}: {PIN_HINT}")
    folder = repo_folder(root, repo_type, repo_id)
    ref = folder / "refs" / revision
    commit = ref.read_text().strip() if not COMMIT.fullmatch(revision) and ref.is_file() else revision
    path = folder / "snapshots" / commit
    if not path.is_dir():
        raise FetchError(f"{repo_type} {repo_id}@{revision} is not in the hub cache {root}{where}: "
                         "run `harness fetch` on the head node")  # fmt: skip
    return path


def local_model(hub_id: str, revision: str | None, root: Path) -> str:
    """The folder from_pretrained reads for a hub model at its pinned commit."""
    return str(snapshot(root, "model", hub_id, revision))


def local_dataset(cfg: DatasetConfig, root: Path) -> str:
    """The folder load_dataset reads for a hub dataset at its pinned commit (its files, as the hub holds them); for
    a URL's file, the folder holding its pinned copy."""
    if cfg.source == "url":
        return str(files.local_file(root, cfg.url, cfg.sha256).parent)
    return str(snapshot(root, "dataset", cfg.hub_path, cfg.revision))


# ----------------------------------------------------------------------------- offline jobs


def offline_stage(job: StageJob, model: ModelConfig, root: Path, reward_models: dict[str, ModelConfig] | None = None,
                  ) -> StageJob:  # fmt: skip
    """The job reading the cache: the base model's snapshot for a hub id, a hub dataset's snapshot as data_dir, the
    snapshot of each hub model its rewards read (`reward_models`: name -> config, for the names in job.models)."""
    changes = {}
    if model.source == "hub" and job.model == model.hub_id:
        changes["model"] = local_model(model.hub_id, model.revision, root)
    judged = {n: m for n, m in (reward_models or {}).items() if n in job.models and m.source == "hub"}
    if judged:
        changes["models"] = job.models | {n: local_model(m.hub_id, m.revision, root) for n, m in judged.items()}
    if job.dataset is not None and job.dataset.fetched and job.stage.data != GENERATED:
        changes["data_dir"] = Path(local_dataset(job.dataset, root))
        if job.dataset.corpus:
            changes["corpus"] = corpus_index(job.dataset, root)
    return replace(job, **changes)


def corpus_index(dataset: DatasetConfig, root: Path) -> Path:
    """The finished BM25 index of the corpus a dataset names (`harness fetch` built it); FetchError when absent."""
    from harness.corpora import index_dir
    from harness.environments.corpus_index import is_index

    cfg = read.load_component(
        "datasets", dataset.corpus, read.CONFIGS / "datasets" / f"{dataset.corpus}.yaml", "corpus"
    )
    folder = index_dir(cfg, root)
    if not is_index(folder):
        raise FetchError(f"the index of corpus {dataset.corpus} is not in the hub cache ({folder}): run `harness "
                         "fetch` on the head node")  # fmt: skip
    return folder


def run_revisions(rp: ResolvedPaper, variant: str) -> dict[str, str]:
    """`hub.<type>.<id>` -> commit of every hub item a run reads (for its MLflow tags; nothing for toy runs)."""
    model = rp.models[rp.variants[variant].model]
    out = {f"hub.model.{model.hub_id}": str(model.revision)} if model.source == "hub" else {}
    judges = [rp.models[n] for st in rp.variants[variant].stages for n in models_read(st.rewards)]
    out |= {f"hub.model.{m.hub_id}": str(m.revision) for m in judges if m.source == "hub"}
    stage_sets = {st.dataset for st in rp.variants[variant].stages if st.dataset}
    datasets = [rp.dataset] + [rp.datasets[n] for n in sorted(stage_sets)]
    out |= {f"hub.dataset.{d.hub_path}": str(d.revision) for d in datasets if d.source == "hub"}
    out |= {f"url.dataset.{d.url}": str(d.sha256) for d in datasets if d.source == "url"}
    return out | {f"hub.eval.{path}": sha for path, sha in (rp.eval.revisions or {}).items()}
