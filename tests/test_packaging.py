"""The optional `vllm` extra resolves together with the pinned core (pip's own resolver, against the registry).

vLLM pins its own torch and transformers; an extra that cannot be installed beside the core would only
show up on a GPU node. This asks pip to resolve `.[vllm]` from scratch without installing anything.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def _core_pins() -> dict[str, str]:
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return dict(d.split("==") for d in deps)


def test_vllm_extra_resolves_with_the_pinned_core(tmp_path):
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet", "--report",
         str(report), f"{ROOT}[vllm]"],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, f"pip could not resolve .[vllm] with the core pins:\n{proc.stderr[-4000:]}"
    from packaging.utils import canonicalize_name as canon

    chosen = {canon(i["metadata"]["name"]): i["metadata"]["version"] for i in json.loads(report.read_text())["install"]}
    assert "vllm" in chosen
    for name, pin in _core_pins().items():
        assert chosen[canon(name)].split("+")[0] == pin, (name, chosen[canon(name)], pin)
