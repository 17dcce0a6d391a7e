"""Property-based mutations of every shipped bundle, run through what `harness validate` runs.

Hypothesis picks a bundle, a node of its YAML tree and a mutation (a value of another type or out of range,
a deleted key, a misspelt key, an unknown key). The outcome must be one of two classes, within a 5 s watchdog:

- refused with a ConfigError naming the bundle file and a key at or around the mutation: the mutated key,
  one above or below it, a sibling (a deletion can make a neighbour invalid), another stage of the same
  variant (stages are checked against the earlier ones), the stage a scale's trainer default breaks (the
  message names the setting), or a key that refers to what was deleted or renamed (a claim on a removed
  variant);
- accepted, and then what the harness would do with it stays sane: every number in the resolved config is
  finite, every name that becomes a path is a slug, and every run directory lies inside results/.

The examples are derandomized (the same ones in every CI run); `HYPOTHESIS_PROFILE=explore` draws fresh ones.
"""

from __future__ import annotations

import json
import math
import os
import signal
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.config.errors import ConfigError
from harness.config.load import load_paper
from harness.config.plain import to_plain
from harness.config.typed import SLUG
from harness.layout import PAPERS
from harness.plan import Plan
from harness.validate import validate_paper, validation_site

BUNDLES = sorted(p.parent.name for p in PAPERS.glob("*/paper.yaml"))
TREES = {
    s: json.loads(json.dumps(yaml.safe_load((PAPERS / s / "paper.yaml").read_text()), default=str)) for s in BUNDLES
}
"""Each bundle as plain data (a JSON round trip undoes YAML anchors, so a mutation changes one place only)."""

settings.register_profile("ci", max_examples=600, derandomize=True, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
settings.register_profile("explore", max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")

ODD_VALUES = [None, [], {}, "", -1, 0, 0.5, 1.5, -0.5, math.nan, math.inf, -math.inf, True, "x" * 3000, "${oops}",
              "../escape", "a/b", "~root", 10**12, [None], {"": 1}, {"k": "v"}, ["a", "b"], "1e-3", "NaN"]  # fmt: skip
VALUES = st.one_of(
    st.sampled_from(ODD_VALUES),
    st.integers(min_value=-(10**13), max_value=10**13),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)


def nodes(tree, path=()):
    """Every node's path (mapping keys and list indexes), the root excluded."""
    if path:
        yield path
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from nodes(v, (*path, k))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from nodes(v, (*path, i))


def parent(tree, path):
    for p in path[:-1]:
        tree = tree[p]
    return tree


class Hang(Exception):
    pass


@contextmanager
def watchdog(seconds: int):
    def fire(*_):
        raise Hang(f"validation still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def dotted(path) -> str:
    return ".".join(map(str, path))


def related(key: str, path: tuple, op: str, message: str) -> bool:
    """The refusal names the mutated key, one above or below it, a sibling, or what referred to a removed name."""
    where, up = dotted(path), dotted(path[:-1])
    if key == where or key.startswith(where + ".") or where.startswith(key + ".") or key == up:
        return True
    if op in ("delete", "rename", "add") and (key.startswith(up + ".") or up.startswith(key + ".")):
        return True
    if path[0] == "variants" and len(path) > 2 and key.startswith(f"variants.{path[1]}."):
        return True  # a stage is checked against the earlier stages of its variant
    if path[0] == "scales" and key.startswith("variants.") and str(path[-1]) in message:
        return True  # a scale's trainer settings are every stage's defaults: the stage they break is named
    if key.startswith("sources.") and key[len("sources.") :].startswith(where):
        return True  # a source of the setting removed (or replaced by another shape) names it
    if path[0] == "variants" and len(path) > 1 and f".stages.{path[1]}." in f".{key}.":
        return True  # a scale's change to the variant's stages (scales.<s>.stages.<variant>.stages.<i>) names it
    return op in ("delete", "rename") and repr(str(path[-1])) in message


def sane(slug: str, papers_dir: Path, scale: str) -> None:
    """What an accepted bundle resolves to: finite numbers, slug names, run directories inside results/."""
    rp = load_paper(slug, scale, papers_dir=papers_dir)

    def numbers(x, at="") -> None:
        if isinstance(x, float):
            assert math.isfinite(x), f"{at}: {x}"
        elif isinstance(x, dict):
            for k, v in x.items():
                numbers(v, f"{at}.{k}")
        elif isinstance(x, list):
            for i, v in enumerate(x):
                numbers(v, f"{at}.{i}")

    numbers({name: to_plain(v) for name, v in rp.variants.items()}, "variants")
    assert all(SLUG.fullmatch(v) for v in rp.variants), list(rp.variants)
    assert all(SLUG.fullmatch(m) for m in rp.models), list(rp.models)
    results = Path("results").resolve()
    for run in Plan([slug], scale, papers_dir=papers_dir).runs(slug):
        assert Path(run.dir).resolve().is_relative_to(results), run.dir


@pytest.mark.parametrize("profile", [PROFILE])
def test_a_mutated_bundle_is_refused_at_its_key_or_stays_sane(profile):
    cluster, site = validation_site("local", None)

    @settings(settings.get_profile(profile))
    @given(st.data())
    def check(data):
        slug = data.draw(st.sampled_from(BUNDLES), label="bundle")
        tree = json.loads(json.dumps(TREES[slug]))
        path = data.draw(st.sampled_from(list(nodes(tree))), label="node")
        holder, last = parent(tree, path), path[-1]
        op = data.draw(st.sampled_from(["set", "set", "set", "delete", "rename", "add"]), label="mutation")
        if op == "set":
            holder[last] = data.draw(VALUES, label="value")
        elif op == "delete":
            del holder[last]
        elif op == "rename" and isinstance(holder, dict):
            holder[str(last) + data.draw(st.sampled_from(["s", "_", "x"]))] = holder.pop(last)
        elif op == "add" and isinstance(holder[last], dict):
            holder[last]["unexpected_key"] = 1
        else:
            holder[last] = data.draw(VALUES, label="value")
            op = "set"
        with tempfile.TemporaryDirectory() as tmp:
            papers = Path(tmp) / "papers"
            file = papers / slug / "paper.yaml"
            file.parent.mkdir(parents=True)
            file.write_text(yaml.safe_dump(tree, sort_keys=False, allow_unicode=True))
            try:
                with watchdog(5):
                    validate_paper(slug, papers, None, cluster, site)
            except ConfigError as e:
                assert e.file == str(file), str(e)
                assert related(e.key, path, op, str(e)), f"{op} {dotted(path)}: the refusal names another key: {e}"
                return
            for scale in tree["scales"]:
                sane(slug, papers, scale)

    check()
