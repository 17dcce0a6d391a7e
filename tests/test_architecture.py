"""The package's shape: imports point one way (no cycles, function-local imports included), stage kinds are
known only to the stage registry, config checks never import torch, and a new stage kind is one module plus its
registration (shown with a throwaway kind that is validated, planned and run)."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.config.schema import Stage
from harness.stages import STAGES, kinds
from harness.stages.kind import DATA, POLICY, SCORER
from tests.conftest import ROOT, run_stage, write_bundle

PACKAGE = ROOT / "harness"


# ----------------------------------------------------------------------------- import cycles


def import_graph(package: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports, read from the source: every `import` statement counts,
    inside functions and `if TYPE_CHECKING:` too. A module importing its own ancestor package is not an edge
    (a registry package imports its members, which import the registry back: rewards/, algorithms/)."""
    name = package.name
    files = {}
    for f in package.rglob("*.py"):
        parts = list(f.relative_to(package.parent).with_suffix("").parts)
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f

    def resolve(module: str, node: ast.AST) -> list[str]:
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            base = node.module or ""
            if node.level:
                here = module.split(".") if files[module].name == "__init__.py" else module.split(".")[:-1]
                base = ".".join(here[: len(here) - node.level + 1] + ([base] if base else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        out = []
        for n in names:
            while n and n not in files:
                n = n.rpartition(".")[0]
            if n and n.split(".")[0] == name:
                out.append(n)
        return out

    graph: dict[str, set[str]] = {m: set() for m in files}
    for module, f in files.items():
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                graph[module] |= {t for t in resolve(module, node) if t != module and not module.startswith(t + ".")}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected sets of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_package_has_no_import_cycles():
    graph = import_graph(PACKAGE)
    assert len(graph) > 50 and sum(map(len, graph.values())) > 150  # the whole package was read
    assert cycles(graph) == []


LAYERS = [  # bottom to top, as harness/__init__.py lists them
    ("harness.registry", "harness.layout", "harness.device", "harness.grader", "harness.sandbox"),
    ("harness.world", "harness.environments"),
    ("harness.rewards", "harness.algorithms"),
    ("harness.config.errors", "harness.config.typed", "harness.config.stage", "harness.config.components",
     "harness.config.parallel", "harness.config.schema", "harness.config.plain", "harness.files"),
    ("harness.stages",),
    ("harness.config.checks", "harness.config.claims", "harness.config.read", "harness.config.resolve", "harness.config.load", "harness.config.constraints",
     "harness.config.selection",
     "harness.config.stage_changes",
     "harness.launch", "harness.memory", "harness.host_memory", "harness.hub", "harness.offline", "harness.corpora", "harness.pinning", "harness.fetching",
     "harness.serve"),
    ("harness.evaluation",),
    ("harness.reporting",),
    ("harness.plan", "harness.validate", "harness.reuse"),
    ("harness.cli", "harness.__main__"),
]  # fmt: skip


def layer_of(module: str) -> int | None:
    """The layer of a module: that of the longest prefix naming it (package __init__ files have none)."""
    matches = [(len(p), i) for i, prefixes in enumerate(LAYERS) for p in prefixes
               if module == p or module.startswith(p + ".")]  # fmt: skip
    return max(matches)[1] if matches else None


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{m} -> {t}" for m, targets in graph.items() for t in targets
                  if None not in (layer_of(m), layer_of(t)) and layer_of(t) > layer_of(m))  # fmt: skip


def test_every_module_sits_in_a_layer_and_imports_only_downwards():
    graph = import_graph(PACKAGE)
    unplaced = sorted(m for m in graph if layer_of(m) is None)
    assert unplaced == ["harness", "harness.config"] and not any(graph[m] for m in unplaced)  # import nothing
    assert upward_imports(graph) == []
    # the check can fail: the planner importing the CLI would be an upward import
    assert upward_imports(graph | {"harness.plan": graph["harness.plan"] | {"harness.cli"}}) == [
        "harness.plan -> harness.cli"
    ]


def test_a_function_local_import_that_closes_a_circle_is_a_cycle(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    for f in ("__init__.py", "sub/__init__.py", "c.py"):
        (pkg / f).write_text("")
    (pkg / "a.py").write_text("from pkg.sub import b\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from .. import c\n")
    (pkg / "c.py").write_text("def g():\n    from pkg import a\n")
    assert cycles(import_graph(pkg)) == [["pkg.a", "pkg.c", "pkg.sub.b"]]
    (pkg / "c.py").write_text("")
    assert cycles(import_graph(pkg)) == []


# ----------------------------------------------------------------------------- stage kinds


def _string_constants(tree: ast.AST) -> list[ast.Constant]:
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)
    }  # fmt: skip
    return [n for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
            and id(n) not in docstrings]  # fmt: skip


def test_no_stage_kind_name_is_written_outside_the_stage_registry():
    """What a stage kind reads, makes and takes is asked of its declaration; no code elsewhere names a kind."""
    names = set(STAGES.names())
    assert names == {"grpo", "sft", "dpo", "reward_model", "process_reward_model", "generate", "multiturn_grpo"}
    found = []
    for f in sorted(PACKAGE.rglob("*.py")):
        if f.is_relative_to(PACKAGE / "stages"):
            continue
        found += [f"{f.relative_to(ROOT)}:{c.lineno}: {c.value!r}" for c in _string_constants(ast.parse(f.read_text()))
                  if c.value in names]  # fmt: skip
    quoted = re.compile("|".join(rf"[\"']{n}[\"']" for n in names))
    for f in [ROOT / "Snakefile", *sorted((ROOT / "workflows").glob("*.smk"))]:
        found += [f"{f.relative_to(ROOT)}:{i}" for i, line in enumerate(f.read_text().splitlines(), 1)
                  if quoted.search(line)]  # fmt: skip
    assert found == []


def test_the_kind_sets_are_derived_from_the_declarations():
    assert kinds(makes=POLICY) == ("grpo", "sft", "dpo", "multiturn_grpo")
    assert kinds(environment=True) == ("multiturn_grpo",)
    assert kinds(makes=SCORER) == ("reward_model", "process_reward_model")
    assert kinds(makes=DATA) == ("generate",)
    assert tuple(n for n, k in STAGES.items() if k.reads_generated) == ("dpo", "reward_model", "process_reward_model")
    assert STAGES.get("reward_model").scorer({"num_groups": 2}) == "mixture"
    assert STAGES.get("reward_model").scorer({"num_groups": None}) == "sequence"
    for name, kind in STAGES.items():  # every entry point resolves without running it
        module, function = kind.entry.split(":")
        assert callable(getattr(__import__(module, fromlist=[function]), function)), name


def test_config_checks_and_planning_import_no_torch():
    code = textwrap.dedent("""
        import sys
        from harness.config.selection import select_papers
        from harness.plan import Plan
        from harness.config.load import load_paper_config, paper_file
        from harness.cli import main
        for scale in ("toy", "small-real", "paper"):
            Plan(select_papers("all", "papers", scale), scale)
        heavy = ("torch", "transformers", "trl", "lm_eval", "mlflow", "omegaconf", "datasets", "submitit")
        print(sorted(m for m in heavy if m in sys.modules))
    """)  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# ----------------------------------------------------------------------------- a new stage kind


THROWAWAY = '''
"""A throwaway stage kind: the policy after it is the policy before it, copied (nothing trains)."""

import json
import shutil
from dataclasses import dataclass

from harness.config.errors import Invalid
from harness.layout import MODEL, STAGE_SUMMARY
from harness.stages.kind import POLICY, SPLIT, StageKind


@dataclass
class CopyArgs:
    max_steps: int = 1
    note: str = "copied"


def check_args(args):
    if not args["note"]:
        raise Invalid("note", "must not be empty")


KIND = StageKind("copy_policy", CopyArgs, reads=SPLIT, makes=POLICY, entry="copy_policy:run", check_args=check_args)


def run(job):
    shutil.copytree(job.model, job.dir / MODEL, dirs_exist_ok=True)
    summary = {"kind": job.stage.kind, "init_model": job.model, "note": job.stage.args["note"], "global_step": 0}
    (job.dir / STAGE_SUMMARY).write_text(json.dumps(summary))
    return summary
'''

BUNDLE = """
paper: {title: A throwaway kind}
variants:
  base: {}
  copied:
    stages:
      - {kind: copy_policy, args: {note: twice}}
      - {kind: grpo, rewards: [{name: exact_match}]}
scales:
  toy: {model: toy-tiny, seeds: [0]}
"""


@pytest.fixture
def throwaway_kind(tmp_path, monkeypatch):
    """The kind's module (one file) on the path and its registration (one line in harness/stages/__init__.py)."""
    (tmp_path / "copy_policy.py").write_text(THROWAWAY)
    monkeypatch.syspath_prepend(str(tmp_path))
    import copy_policy

    monkeypatch.setitem(STAGES._items, "copy_policy", copy_policy.KIND)
    yield copy_policy.KIND
    sys.modules.pop("copy_policy", None)


def test_a_new_stage_kind_is_one_module_and_its_registration(throwaway_kind, tmp_path, world):
    from harness.config.errors import ConfigError
    from harness.plan import Plan

    papers = tmp_path / "papers"
    write_bundle(papers, "p", BUNDLE)
    plan = Plan(["p"], "toy", papers)
    run = plan.run("p", "copied", 0)
    copy, grpo = plan.papers["p"].variants["copied"].stages
    assert copy.args == {"max_steps": 1, "note": "twice"}  # its own schema, its defaults
    assert plan.model_after(run, 1) == f"{run.dir}/stage0/model"  # it makes a policy: the grpo stage starts there
    assert f"{run.dir}/stage0/train.json" in plan.stage_inputs(run, 1)
    assert plan.snapshot_steps(run, 0) == [] and len(plan.stage_fingerprint(run, 0)) == 16

    write_bundle(papers, "q", BUNDLE.replace("note: twice", "note: ''"))
    with pytest.raises(ConfigError) as err:  # its own check, named at the key in the file
        Plan(["q"], "toy", papers)
    assert err.value.key == "variants.copied.stages.0.args.note"
    write_bundle(papers, "r", BUNDLE.replace("note: twice", "notes: twice"))
    with pytest.raises(ConfigError) as err:
        Plan(["r"], "toy", papers)
    assert err.value.key == "variants.copied.stages.0.args.notes"

    root, dataset = world
    stage = Stage(kind="copy_policy", data="train", rewards=[], args={"max_steps": 1, "note": "ran"})
    summary = run_stage(stage, str(root / "model"), dataset, root / "data", 0, tmp_path / "stage0")
    assert summary["note"] == "ran" and (tmp_path / "stage0" / "model" / "config.json").is_file()
    assert json.loads((tmp_path / "stage0" / "train.json").read_text())["kind"] == "copy_policy"


def test_a_kind_reading_generated_data_is_refused_on_a_split(throwaway_kind, tmp_path, monkeypatch):
    """The generic checks follow the declaration: a kind that reads pairs needs `data: generated`."""
    import dataclasses

    from harness.config.errors import ConfigError
    from harness.config.load import load_paper
    from harness.stages.kind import PAIRS

    monkeypatch.setitem(STAGES._items, "copy_policy", dataclasses.replace(throwaway_kind, reads=PAIRS))
    write_bundle(tmp_path / "papers", "p", BUNDLE)
    with pytest.raises(ConfigError) as err:
        load_paper("p", "toy", papers_dir=tmp_path / "papers")
    assert err.value.key == "variants.copied.stages.0.data" and "trains on pairs" in str(err.value)
