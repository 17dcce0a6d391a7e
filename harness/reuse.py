"""Finished jobs reused by identical ones: the same stage or evaluation in another variant, paper or set.

A job's fingerprint (harness.plan) names the folders it reads by their paths, so two runs whose first stages are
the same config, seed and base still differ in it: each run's folder is its own. A job's content key names what it
reads by what made it instead: an earlier stage of the run by that stage's own content key, a file of the world (a
toy base's pretrain.json, a generated split, a hub marker) by the sha256 of its bytes. Every train or evaluate job
that finishes here records its folder under its key (results/reuse/<key>.json); a later job with the same key links
that folder's files into its own (hard links, copies across file systems) and rewrites its summary to say so
(`reused_from`), instead of computing them again. Identical jobs give identical files on one machine (the world's
numerics are pinned), so the copy is what the job would have written.

Limits, on purpose:
- A key says nothing of the code: as with Snakemake's own up-to-date outputs, a result made by an older commit is
  reused until its folder is re-made or moved. `harness --no-reuse` (Snakemake: `--config reuse=false`) computes
  every job afresh; removing results/reuse/ forgets every entry.
- An entry is trusted only while its folder's summary (train.json, metrics.json) is the very file it recorded
  (its sha256): a folder re-made by another config, or moved away, is never reused.
- Training checkpoints, SLURM folders, logs and the evaluations made during training (their own jobs) are not
  linked; a stage whose payload still names a folder of its run after the substitution is never reused.
- A job that computes into a folder first unlinks the files it shares with other folders (`detach`): a trainer
  that rewrites a file in place would otherwise change every copy of it.
- Identical jobs that Snakemake starts together (the same stage in two papers of one run) are computed once: each
  job holds its key's lock (`claim`, results/reuse/<key>.lock) from its look-up to its record, so the second waits
  for the first and then takes its folder. The lock is an advisory flock: released when its process ends however it
  ends, and as good as the file system's flock (where a shared file system has none, both compute, as without it).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from harness.config.plain import fingerprint
from harness.layout import (
    METRICS_FILE,
    REUSE,
    RUNS,
    STAGE_SUMMARY,
    Run,
    checkpoint_eval_file,
    eval_file,
    snapshot_dir,
    stage_dir,
    stage_model,
    write_atomic,
)

NOT_LINKED = frozenset({"slurm", "checkpoints", "evals", "train.log", "eval.log"})
"""What a finished folder holds that a copy does not take: resume state, job records, logs, other jobs' outputs."""


def _sha(path: str) -> str:
    """sha256 of a file's bytes, read once per (path, size, mtime) in a process (a plan keys many jobs)."""
    st = os.stat(path)
    return _sha_of(path, st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=4096)
def _sha_of(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _substitute(obj: Any, names: dict[str, str]) -> Any:
    """`obj` with every string that is a key of `names` replaced by its value (in dicts and lists)."""
    if isinstance(obj, dict):
        return {k: _substitute(v, names) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_substitute(v, names) for v in obj]
    return names.get(obj, obj) if isinstance(obj, str) else obj


def _mentions(obj: Any, prefix: str) -> bool:
    if isinstance(obj, dict):
        return any(_mentions(v, prefix) for v in obj.values())
    if isinstance(obj, list | tuple):
        return any(_mentions(v, prefix) for v in obj)
    return isinstance(obj, str) and obj.startswith(prefix)


def _content_key(plan, run: Run, job: str, payload: dict, before: int, inputs: list[str]) -> str | None:
    """The key of a job of `run` that reads `payload` and the files `inputs`, and the run's first `before` stages."""
    names: dict[str, str] = {}
    for j in range(before):
        key = stage_key(plan, run, j)
        if key is None:
            return None
        names[stage_dir(run, j)] = names[stage_model(run, j)] = f"stage:{key}"
        names |= {snapshot_dir(run, j, s): f"stage:{key}/step{s}" for s in plan.snapshot_steps(run, j)}
    plain = _substitute(payload, names)
    if _mentions(plain, run.dir + "/"):  # something of this run the substitution does not name: never shared
        return None
    files = [p for p in sorted(inputs) if not p.startswith(RUNS + "/")]
    if not all(Path(p).is_file() for p in files):  # a job whose inputs are not all here yet is not keyed
        return None
    world = {p: _sha(p) for p in files}
    return fingerprint({"job": job, "reads": plain, "world": world})


def stage_key(plan, run: Run, i: int) -> str | None:
    """Stage `i` of `run` by content: equal keys mean the same job (None: not shareable)."""
    return plan.once(("content", run, i), lambda: _content_key(
        plan, run, "train", plan.stage_payload(run, i), i, plan.stage_inputs(run, i)))  # fmt: skip


def eval_key(plan, run: Run, stage: int | None = None, step: int | None = None) -> str | None:
    """The evaluation of `run`'s final model (or of the model saved at `step` of `stage`) by content."""
    n = len(plan.papers[run.paper].variants[run.variant].stages)
    if stage is None:
        return _content_key(plan, run, "eval", plan.eval_payload(run), n, plan.eval_inputs(run))
    payload = plan.checkpoint_eval_payload(run, stage, step)
    return _content_key(plan, run, "eval", payload, n, plan.checkpoint_eval_inputs(run, stage))


def _entry(key: str) -> Path:
    return Path(REUSE) / f"{key}.json"


@contextmanager
def claim(key: str | None, what: str) -> Iterator[None]:
    """Hold job `key` (its look-up, computation and record): an identical job waits here until this one is done, then
    finds it finished. No key (a job that is never shared): nothing to hold."""
    if key is None:
        yield
        return
    lock = _entry(key).with_suffix(".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as f:
        held = _hold(f, lock, what)
        try:
            yield
        finally:
            if held:
                fcntl.flock(f, fcntl.LOCK_UN)


def _hold(f, lock: Path, what: str) -> bool:
    """Lock `f` exclusively, waiting (and saying so) while another job holds it; False where the file system has no
    locks (ENOLCK on some network file systems): the job then computes, as it would without the lock."""
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"waiting for an identical job to finish {what} ({lock}); it is then reused", flush=True)
        fcntl.flock(f, fcntl.LOCK_EX)
    except OSError as e:
        print(f"no lock on {lock} ({e.strerror}): an identical job started beside this one computes too", flush=True)
        return False
    return True


def record(key: str | None, folder: Path | str, summary: str) -> None:
    """Remember that `folder` holds the finished job `key` (its `summary` file written last)."""
    marker = Path(folder) / summary
    if key is None or not marker.exists():
        return
    _entry(key).parent.mkdir(parents=True, exist_ok=True)
    write_atomic(_entry(key), json.dumps({"dir": str(folder), "summary": summary, "sha256": _sha(str(marker))}))


def lookup(key: str | None, folder: Path | str) -> Path | None:
    """The folder of a finished job with this key (not `folder` itself), while it still holds what was recorded."""
    if key is None or not _entry(key).exists():
        return None
    try:
        entry = json.loads(_entry(key).read_text())
        src = Path(entry["dir"])
        marker = src / entry["summary"]
        if src.resolve() == Path(folder).resolve() or not marker.exists() or _sha(str(marker)) != entry["sha256"]:
            return None
    except (OSError, ValueError, KeyError):
        return None
    return src


def _link_tree(src: Path, dst: Path, skip: frozenset[str]) -> int:
    """Hard-link (or copy) every file under `src` into `dst`, leaving out the top-level names in `skip`."""
    n = 0
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if rel.parts[0] in skip or path.is_dir():
            continue
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists() or target.is_symlink():
            target.unlink()
        try:
            os.link(path, target)
        except OSError:
            shutil.copy2(path, target)
        n += 1
    return n


def _take(src: Path, dst: Path, summary: str, fix: dict[str, Any]) -> None:
    """Link `src`'s files into `dst`, then write the summary last (the job's output) with `fix` and `reused_from`."""
    dst.mkdir(parents=True, exist_ok=True)
    n = _link_tree(src, dst, NOT_LINKED | {summary})
    data = json.loads((src / summary).read_text())
    data |= {k: v for k, v in fix.items() if k in data} | {"reused_from": str(src)}
    write_atomic(dst / summary, json.dumps(data, indent=1))
    print(f"reused {src} ({n} files): the same job, by content key (harness/reuse.py; --no-reuse computes it)",
          flush=True)  # fmt: skip


def detach(folder: Path | str) -> int:
    """Unlink every file under `folder` that is shared with another folder (a hard link made by a reuse), so that a
    job computing into `folder` afresh, which may rewrite a file in place, cannot change the other folder's copy."""
    shared = [p for p in Path(folder).rglob("*") if p.is_file() and not p.is_symlink() and p.stat().st_nlink > 1]
    for path in shared:
        path.unlink()
    return len(shared)


def reuse_stage(plan, run: Run, i: int) -> bool:
    """Fill stage `i` of `run` from a finished identical stage; False when there is none."""
    dst = Path(stage_dir(run, i))
    src = lookup(stage_key(plan, run, i), dst)
    if src is None:
        return False
    init = plan.model_after(run, i)
    _take(src, dst, STAGE_SUMMARY, {"init_model": init} if init.startswith(RUNS + "/") else {})
    record(stage_key(plan, run, i), dst, STAGE_SUMMARY)
    return True


def reuse_eval(plan, run: Run, stage: int | None = None, step: int | None = None, key: str | None = None) -> bool:
    """Fill an evaluation of `run` (its content `key`, as eval_key, computed here when not given) from a finished
    identical one; False when there is none."""
    out = Path(eval_file(run) if stage is None else checkpoint_eval_file(run, stage, step)).parent
    key = key or eval_key(plan, run, stage, step)
    src = lookup(key, out)
    if src is None:
        return False
    model = plan.final_model(run) if stage is None else snapshot_dir(run, stage, step)
    _take(src, out, METRICS_FILE, {"model": model})
    record(key, out, METRICS_FILE)
    return True


def record_stage(plan, run: Run, i: int) -> None:
    record(stage_key(plan, run, i), stage_dir(run, i), STAGE_SUMMARY)


def record_eval(plan, run: Run, stage: int | None = None, step: int | None = None) -> None:
    out = Path(eval_file(run) if stage is None else checkpoint_eval_file(run, stage, step)).parent
    record(eval_key(plan, run, stage, step), out, METRICS_FILE)
