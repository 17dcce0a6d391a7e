"""The Hugging Face hub for offline compute nodes: what a paper scale downloads, fetched once on the head node.

Compute nodes never reach the hub. `harness fetch` (the Snakemake rule `fetch_hub`, on the head node) downloads
every hub item the selected papers use, each at its pinned commit, into the hub cache
(`ClusterConfig.hub_cache`, a shared folder; None: HF_HOME, the project's .cache/huggingface unless set):

    models      configs/models/*.yaml    source: hub, hub_id, revision, gated
    datasets    configs/datasets/*.yaml  source: hub, hub_path, revision   (or source: url, url, sha256: one file,
                                                                      harness/files.py)
    eval data   configs/eval/*.yaml      revisions: {<dataset_path of an lm-eval task>: <commit>}

The cache has the layout `snapshot_download` writes (<cache>/hub/models--org--name/snapshots/<commit>/...).
Jobs read the cache offline (harness/offline.py: the environment that keeps them off the network, the snapshots
of pinned items, what a stage or an evaluation reads there); `use_local_task_data` points lm-eval's tasks at their
datasets' snapshots. An item without `revision` is refused before anything downloads; `harness fetch --pin`, on a
machine that reaches the hub, writes the current commit of each unpinned item into its config file.

Each fetched item leaves a marker under results/hub/ whose name holds its commit (`marker`); the train and
evaluate jobs that read the item list it as an input, so a pinned item is fetched once, and a new pin makes a
new marker and re-runs the jobs that read it.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness import files
from harness.config import load, read
from harness.config.components import DatasetConfig, EvalConfig, ModelConfig
from harness.config.errors import ConfigError, FetchError
from harness.config.plain import fingerprint
from harness.layout import RESULTS, write_atomic
from harness.offline import COMMIT, PIN_HINT, repo_folder, snapshot
from harness.rewards import suite_models

if TYPE_CHECKING:
    from harness.config.schema import ResolvedPaper

HUB = f"{RESULTS}/hub"
"""Markers of fetched items: results/hub/<models|datasets|eval>/<name>@<commit>.json."""
KINDS = {"models": "model", "datasets": "dataset"}
"""Marker folder -> hub repository type."""
TASKS_DIR = Path(__file__).resolve().parent / "evaluation" / "tasks"
"""The project's own lm-eval tasks (harness.evaluation.evaluate.TASKS_DIR; that layer sits above this one)."""


@dataclass(frozen=True)
class HubItem:
    """One hub repository a run reads, and the config entry that pins it."""

    repo_id: str
    repo_type: str
    """`model` or `dataset`."""
    revision: str | None
    file: Path
    """The config file that names it ..."""
    key: str
    """... and the key there holding its commit."""
    gated: bool = False
    tasks: tuple[str, ...] = ()
    """lm-eval task datasets: the tasks reading it."""

    def __str__(self) -> str:
        return f"{self.repo_type} {self.repo_id}@{self.revision or 'unpinned'}"


# ----------------------------------------------------------------------------- what runs use


def _config_file(kind: str, name: str) -> Path:
    return read.CONFIGS / kind / f"{name}.yaml"


def model_item(name: str, cfg: ModelConfig) -> HubItem:
    return HubItem(cfg.hub_id, "model", cfg.revision, _config_file("models", name), "revision", cfg.gated)


def dataset_item(name: str, cfg: DatasetConfig) -> HubItem:
    if cfg.source == "url":
        return HubItem(cfg.url, "file", cfg.sha256, _config_file("datasets", name), "sha256")
    return HubItem(cfg.hub_path, "dataset", cfg.revision, _config_file("datasets", name), "revision")


@functools.cache
def _own_tasks() -> dict[str, bool]:
    """The project's own lm-eval tasks: name -> whether it reads generated data (`custom_dataset`)."""
    out = {}
    for f in TASKS_DIR.glob("*.yaml"):
        text = f.read_text()
        for line in text.splitlines():
            if line.startswith("task:"):
                out[line.split(":", 1)[1].strip()] = "\ncustom_dataset:" in text
    return out


def suite_uses_hub(cfg: EvalConfig) -> bool:
    """Whether a suite's tasks read hub datasets: every task but the project's generated-data ones
    (`custom_dataset`), decided without importing lm-eval (the Snakefile asks). An episode suite (`environment`)
    runs no lm-eval task: it reads the generated test split."""
    return cfg.environment is None and any(not _own_tasks().get(t, False) for t in cfg.tasks)


def task_datasets(tasks: Iterable[str]) -> dict[str, tuple[str, str | None]]:
    """Leaf task -> (dataset_path, dataset_name) of the hub dataset it reads, groups and tags expanded, from
    lm-eval's task index (tasks with a `custom_dataset` read none)."""
    from lm_eval.tasks import TaskManager

    tm = TaskManager(include_path=str(TASKS_DIR), include_defaults=bool(set(tasks) - set(_own_tasks())))
    out: dict[str, tuple[str, str | None]] = {}
    for leaf, cfg in _leaf_configs(tm, list(tasks), resolve=False):
        if cfg.get("dataset_path") and not cfg.get("custom_dataset"):
            out[leaf] = (cfg["dataset_path"], cfg.get("dataset_name"))
    return out


def _leaf_configs(tm, names: list, resolve: bool) -> Iterable[tuple[str, dict]]:
    """(name, YAML config) of every leaf task under `names` (groups' `task:` lists and tags expanded)."""
    from lm_eval.tasks._index import Kind
    from lm_eval.tasks._yaml_loader import load_yaml

    seen: set[str] = set()
    todo = list(names)
    while todo:
        item = todo.pop(0)
        name = item["task"] if isinstance(item, dict) else item
        if name in seen or name not in tm.task_index:
            continue
        seen.add(name)
        entry = tm.task_index[name]
        cfg = load_yaml(entry.yaml_path, resolve_func=resolve) if entry.yaml_path else dict(entry.cfg or {})
        if entry.kind == Kind.TAG:
            todo += sorted(entry.tags)
        elif entry.kind == Kind.GROUP:
            todo += [t for t in cfg.get("task", []) if isinstance(t, (str, dict))]
        else:
            yield name, cfg


def eval_items(name: str, cfg: EvalConfig) -> list[HubItem]:
    """The hub datasets of an eval suite's lm-eval tasks (reads lm-eval's task index)."""
    by_path: dict[str, list[str]] = {}
    for task, (path, _) in task_datasets(cfg.tasks).items():
        by_path.setdefault(path, []).append(task)
    revisions = cfg.revisions or {}
    return [HubItem(path, "dataset", revisions.get(path), _config_file("eval", name), f"revisions.{path}",
                    tasks=tuple(tasks)) for path, tasks in sorted(by_path.items())]  # fmt: skip


def paper_items(rp: ResolvedPaper, with_eval: bool = True) -> list[HubItem]:
    """Every hub item one resolved paper uses: its models, datasets and (with_eval) eval task datasets."""
    items = [model_item(n, m) for n, m in rp.models.items() if m.source == "hub"]
    datasets = {rp.dataset_name: rp.dataset} | rp.datasets
    items += [dataset_item(n, d) for n, d in datasets.items() if d.fetched]
    if with_eval and suite_uses_hub(rp.eval):
        items += eval_items(rp.eval_name, rp.eval)
    return items


def items_of(papers: list[str], scale: str, papers_dir: Path) -> list[HubItem]:
    """The hub items of the selected papers at one scale, each once."""
    out: dict[tuple, HubItem] = {}
    for slug in papers:
        for item in paper_items(load.load_paper(slug, scale, papers_dir=papers_dir)):
            out.setdefault((item.repo_type, item.repo_id, item.file, item.key), item)
    return list(out.values())


# ----------------------------------------------------------------------------- markers (Snakemake inputs)


def _slug(repo_id: str, revision: str | None) -> str:
    """A marker's name: a URL's file by its file name (the digest tells the content apart)."""
    if "://" in repo_id:
        repo_id = files.file_name(repo_id)
    return f"{repo_id.replace('/', '--')}@{revision or 'unpinned'}"


def model_marker(cfg: ModelConfig) -> str:
    return f"{HUB}/models/{_slug(cfg.hub_id, cfg.revision)}.json"


def dataset_marker(cfg: DatasetConfig) -> str:
    if cfg.source == "url":
        return f"{HUB}/datasets/{_slug(cfg.url, cfg.sha256)}.json"
    return f"{HUB}/datasets/{_slug(cfg.hub_path, cfg.revision)}.json"


def eval_marker(name: str, cfg: EvalConfig) -> str:
    """One marker per suite (its task datasets are only known to lm-eval), named by its tasks and pins."""
    return f"{HUB}/eval/{name}@{fingerprint({'tasks': list(cfg.tasks), 'revisions': cfg.revisions or {}})}.json"


def stage_markers(rp: ResolvedPaper, variant: str, model: str, dataset: DatasetConfig | None,
                  reward_models: list[str] = ()) -> list[str]:  # fmt: skip
    """Markers a training stage waits for: its base model when it starts from a hub model (`model` is the policy
    it starts from), its dataset when it reads a hub dataset's split (None: it reads an earlier stage's data), and
    each hub model its rewards read (`reward_models`: their config names; a judge)."""
    base = rp.models[rp.variants[variant].model]
    out = [model_marker(base)] if base.source == "hub" and model == base.hub_id else []
    out += [model_marker(rp.models[n]) for n in reward_models if rp.models[n].source == "hub"]
    out += [dataset_marker(dataset)] if dataset is not None and dataset.fetched else []
    out += [dataset_marker(rp.datasets[dataset.corpus])] if dataset is not None and dataset.corpus else []
    return list(dict.fromkeys(out))


def eval_markers(rp: ResolvedPaper, variant: str | None, model: str | None) -> list[str]:
    """Markers an evaluation waits for: the base model when it evaluates a hub model, the hub models the suite's
    judges read, the suite's task data."""
    base = rp.models[rp.variants[variant].model] if variant is not None else None
    out = [model_marker(base)] if base is not None and base.source == "hub" and model == base.hub_id else []
    out += [model_marker(rp.models[n]) for n in suite_models(rp.eval) if rp.models[n].source == "hub"]
    if rp.eval.dataset is not None:  # an episode suite's own questions, and their corpus
        own = rp.datasets[rp.eval.dataset]
        out += [dataset_marker(own)] + ([dataset_marker(rp.datasets[own.corpus])] if own.corpus else [])
    return list(dict.fromkeys(out + ([eval_marker(rp.eval_name, rp.eval)] if suite_uses_hub(rp.eval) else [])))


def marker_items(marker: str | Path) -> list[HubItem]:
    """The items a marker stands for, found in configs/ (what the Snakemake rule fetches)."""
    path = Path(marker)
    kind, name = path.parent.name, path.stem
    if kind == "eval":
        suite = name.split("@", 1)[0]
        cfg = read.load_component("eval", suite, path, "marker")
        if eval_marker(suite, cfg) != f"{HUB}/eval/{path.name}":
            raise FetchError(f"{path}: configs/eval/{suite}.yaml has changed since this marker was planned")
        return eval_items(suite, cfg)
    if kind not in KINDS:
        raise FetchError(f"{path}: not a hub marker ({HUB}/<models|datasets|eval>/<name>.json)")
    found = []
    for file in sorted((read.CONFIGS / kind).glob("*.yaml")):
        cfg = read.load_component(kind, file.stem, path, "marker")
        if cfg.source == "hub" or (kind == "datasets" and cfg.fetched):
            item = model_item(file.stem, cfg) if kind == "models" else dataset_item(file.stem, cfg)
            if _slug(item.repo_id, item.revision) == name:
                found.append(item)
    if not found:
        raise FetchError(f"{path}: no hub {KINDS[kind]} in configs/{kind}/ has this id and revision")
    return found[:1]


# ----------------------------------------------------------------------------- fetching


def check_pinned(item: HubItem) -> None:
    """Refuse an item without a full commit (a URL's file: its SHA-256), naming the config file and key."""
    if item.repo_type == "file":
        if item.revision is None or not files.SHA256.fullmatch(item.revision):
            raise ConfigError(
                item.file, item.key, f"file {item.repo_id} is not pinned to its SHA-256: {files.PIN_HINT}"
            )
        return
    if item.revision is None:
        raise ConfigError(item.file, item.key, f"{item.repo_type} {item.repo_id} is not pinned to a commit: {PIN_HINT}")
    if not COMMIT.fullmatch(item.revision):
        raise ConfigError(item.file, item.key, f"{item.revision!r} is not a commit (40 hex digits): {PIN_HINT}")


def fetch_item(item: HubItem, root: Path) -> Path:
    """Download one pinned item into the cache (a complete snapshot already there needs no network)."""
    check_pinned(item)
    if item.repo_type == "file":
        return files.download(item.repo_id, item.revision, root)
    from huggingface_hub import get_token, snapshot_download
    from huggingface_hub.errors import GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError

    page = f"https://huggingface.co/{'datasets/' if item.repo_type == 'dataset' else ''}{item.repo_id}"
    gated = (f"{item} is gated: accept its licence on {page} with your account and set HF_TOKEN on the head node "
             f"(read token)")  # fmt: skip
    if item.gated and not get_token() and not (repo_folder(root, item.repo_type, item.repo_id) / "snapshots"
                                               / item.revision).is_dir():  # fmt: skip
        raise FetchError(gated)
    try:
        return Path(snapshot_download(item.repo_id, revision=item.revision, repo_type=item.repo_type,
                                      cache_dir=str(root / "hub")))  # fmt: skip
    except GatedRepoError as e:
        raise FetchError(f"{gated} ({e.__class__.__name__})") from None
    except RepositoryNotFoundError:
        raise FetchError(f"{item}: no such repository on the hub, or it is private ({item.file}: {item.key})") from None
    except LocalEntryNotFoundError as e:
        raise FetchError(f"{item} is not in the hub cache {root} and the hub cannot be reached: {e}") from None


def fetch(items: list[HubItem], root: Path, log: Callable[[str], None] = print) -> dict[HubItem, Path]:
    """Fetch every item (each refusal is checked before the first download); returns item -> snapshot."""
    for item in items:
        check_pinned(item)
    out = {}
    for k, item in enumerate(items, 1):
        start = time.time()
        log(f"[{k}/{len(items)}] {item} ...")
        out[item] = fetch_item(item, root)
        log(f"[{k}/{len(items)}] {item}: {out[item]} ({time.time() - start:.1f} s)")
    return out


def write_marker(marker: str | Path, fetched: dict[HubItem, Path]) -> None:
    path = Path(marker)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{"repo_id": i.repo_id, "repo_type": i.repo_type, "revision": i.revision, "snapshot": str(p),
             "config": f"{i.file}: {i.key}", "tasks": list(i.tasks)} for i, p in fetched.items()]  # fmt: skip
    write_atomic(path, json.dumps({"items": rows, "fetched": time.time()}, indent=1))


def markers_of(items: list[HubItem], rps: list[ResolvedPaper]) -> dict[str, list[HubItem]]:
    """The markers (as the plan lists them) that fetching `items` completes, with their items."""
    out: dict[str, list[HubItem]] = {}
    for rp in rps:
        for name, m in rp.models.items():
            if m.source == "hub":
                out[model_marker(m)] = [model_item(name, m)]
        for name, d in ({rp.dataset_name: rp.dataset} | rp.datasets).items():
            if d.fetched:
                out[dataset_marker(d)] = [dataset_item(name, d)]
        if suite_uses_hub(rp.eval):
            out[eval_marker(rp.eval_name, rp.eval)] = [i for i in items if i.file == _config_file("eval", rp.eval_name)]
    return out


# ----------------------------------------------------------------------------- offline evaluation


def use_local_task_data(tm, cfg: EvalConfig, root: Path) -> dict[str, str]:
    """Point each lm-eval task of the suite that reads a hub dataset at its snapshot in the cache (before any
    task is built); returns task -> folder. Replaces the tasks' entries in `tm`'s index by their full configs."""
    from lm_eval.tasks._index import Entry

    revisions, out = cfg.revisions or {}, {}
    for name, task_cfg in list(_leaf_configs(tm, list(cfg.tasks), resolve=True)):
        path = task_cfg.get("dataset_path")
        if not path or task_cfg.get("custom_dataset"):
            continue
        where = f" (task {name}; configs/eval/*.yaml revisions.{path})"
        out[name] = str(snapshot(root, "dataset", path, revisions.get(path), where))
        kind = tm.task_index[name].kind
        tm.task_index[name] = Entry(name=name, kind=kind, yaml_path=None, cfg={**task_cfg, "dataset_path": out[name]})
    return out
