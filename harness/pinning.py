"""Pinning what a paper scale reads: `harness fetch --pin`, on a machine that reaches the hub, writes the current
commit of each unpinned hub item (the SHA-256 of each unpinned URL's file) into its config file, comments kept."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from harness import files
from harness.hub import HubItem


def resolve_commit(item: HubItem) -> str:
    """The hub's current commit of an item (needs the hub); a URL's file: the SHA-256 of what it serves now."""
    if item.repo_type == "file":
        return files.current_digest(item.repo_id)
    from huggingface_hub import HfApi

    api = HfApi()
    info = api.model_info(item.repo_id) if item.repo_type == "model" else api.dataset_info(item.repo_id)
    return info.sha


def pin(items: list[HubItem], log: Callable[[str], None] = print,
        resolve: Callable[[HubItem], str] = resolve_commit) -> list[HubItem]:  # fmt: skip
    """Write the current commit of every unpinned item into its config file (comments kept); returns them pinned."""
    out = []
    for item in items:
        if item.revision is not None:
            out.append(item)
            continue
        sha = resolve(item)
        write_revision(item.file, item.key, sha)
        log(f"pinned {item.repo_type} {item.repo_id} at {sha}: {item.file}: {item.key}")
        out.append(replace(item, revision=sha))
    return out


def write_revision(file: Path, key: str, sha: str) -> None:
    """Set `revision: <sha>` (`sha256: <digest>`, or `revisions: {<path>: <sha>}`) in a YAML file, textually:
    comments stay.

    >>> import tempfile; f = Path(tempfile.mkdtemp()) / "m.yaml"
    >>> _ = f.write_text("# a model\\nsource: hub\\nhub_id: a/b\\n")
    >>> write_revision(f, "revision", "0" * 40); print(f.read_text(), end="")
    # a model
    source: hub
    hub_id: a/b
    revision: 0000000000000000000000000000000000000000
    >>> _ = f.write_text("tasks: [x]  # the suite\\nrevisions:\\n  a/b: old\\n")
    >>> write_revision(f, "revisions.c/d", "1" * 40); write_revision(f, "revisions.a/b", "2" * 40)
    >>> print(f.read_text(), end="")
    tasks: [x]  # the suite
    revisions:
      a/b: 2222222222222222222222222222222222222222
      c/d: 1111111111111111111111111111111111111111
    """
    lines = file.read_text().splitlines()
    if key in ("revision", "sha256"):
        at = next((i for i, ln in enumerate(lines) if re.match(rf"{key}\s*:", ln)), None)
        if at is not None:
            lines[at] = f"{key}: {sha}"
        else:
            after = next((i for i, ln in enumerate(lines) if re.match(r"(hub_id|hub_path|url)\s*:", ln)),
                         len(lines) - 1)  # fmt: skip
            lines.insert(after + 1, f"{key}: {sha}")
    else:
        path = key.split(".", 1)[1]
        at = next((i for i, ln in enumerate(lines) if re.match(r"revisions\s*:", ln)), None)
        if at is None:
            lines += ["revisions:  # hub commits of the tasks' datasets (harness fetch --pin)", f"  {path}: {sha}"]
        else:
            import yaml

            value = lines[at].split(":", 1)[1].split("#", 1)[0].strip()
            if value:  # flow style or null: rewrite as a block
                known = yaml.safe_load(value) or {}
                lines[at : at + 1] = ["revisions:"] + [f"  {k}: {v}" for k, v in known.items()]
            end = at + 1
            while end < len(lines) and lines[end].startswith((" ", "\t")):
                end += 1
            mine = next((i for i in range(at + 1, end) if lines[i].strip().split(":", 1)[0] == path), None)
            if mine is not None:
                lines[mine] = f"  {path}: {sha}"
            else:
                lines.insert(end, f"  {path}: {sha}")
    file.write_text("\n".join(lines) + "\n")
