"""The generation-engine policy (harness.device.resolve_engine): `auto` is vLLM on a GPU and refuses there
without the vllm package (no silent fallback to transformers' generate); `hf` asked for explicitly is always
honoured; the CPU keeps `auto` = hf. The engine used is recorded in a stage's train.json; the vllm extra is
pinned inside TRL's supported range. A GPU (and vLLM) are the only things faked."""

from __future__ import annotations

import tomllib
import warnings
from importlib.metadata import version

import pytest

from harness import device
from harness.device import VLLM_SERVER_ENV, resolve_engine
from tests.conftest import ROOT, run_stage


@pytest.mark.parametrize("cuda, vllm, engine", [(True, True, "vllm"), (False, True, "hf"), (False, False, "hf")])
def test_auto_is_vllm_on_a_gpu_and_hf_on_the_cpu(cuda, vllm, engine):
    assert resolve_engine("auto", cuda_visible=cuda, vllm=vllm) == engine


def test_auto_on_a_gpu_without_vllm_refuses_and_says_how_to_ask_for_hf():
    with pytest.raises(RuntimeError, match=r"vllm package is not installed.*`generation_engine: hf`.*`engine: hf`"):
        resolve_engine("auto", cuda_visible=True, vllm=False)
    assert resolve_engine("hf", cuda_visible=True, vllm=False) == "hf"  # asked for explicitly: honoured


def test_a_grpo_stage_on_a_gpu_without_vllm_refuses_unless_it_asks_for_hf(monkeypatch):
    from harness.stages.grpo import generation_args

    monkeypatch.setattr(device, "cuda", lambda: True)
    monkeypatch.setattr(device, "vllm_installed", lambda: False)
    with pytest.raises(RuntimeError, match="generation_engine: hf"):
        generation_args({"generation_engine": "auto"})
    assert generation_args({"generation_engine": "hf"}) == {"use_vllm": False}


def test_server_mode_takes_the_url_harness_serve_exported(monkeypatch, tmp_path):
    from trl import GRPOConfig

    from harness.stages.grpo import GRPOArgs, generation_args, generation_record
    from harness.stages.plumbing import common_args

    monkeypatch.setattr(device, "cuda", lambda: True)
    monkeypatch.setattr(device, "vllm_installed", lambda: True)
    args = {"max_steps": 1, "generation_engine": "auto", "vllm_mode": "server"}
    assert generation_args(args) == {"use_vllm": True, "vllm_mode": "server"}  # no server job: TRL's host/port
    monkeypatch.setenv(VLLM_SERVER_ENV, "http://node7:41234")
    gen = generation_args(args)
    assert gen["vllm_server_base_url"] == "http://node7:41234"
    record = generation_record(gen)
    assert (record["engine"], record["vllm_mode"], record["vllm_server"]) == ("vllm", "server", "http://node7:41234")
    monkeypatch.setattr(device, "cuda", lambda: False)  # GRPOConfig itself must not see a GPU here
    cfg = GRPOConfig(**common_args(GRPOArgs, args, 0, tmp_path) | gen)  # vllm_mode in both: no duplicate keyword
    assert (cfg.use_vllm, cfg.vllm_mode, cfg.vllm_server_base_url) == (True, "server", "http://node7:41234")


def test_a_grpo_stage_records_the_engine_it_used_in_train_json(world, tmp_path):
    from tests.test_grpo import stage

    root, dataset = world
    summary = run_stage(stage(generation_engine="auto"), str(root / "model"), dataset, root / "data", 0, tmp_path)
    assert summary["generation"] == {"engine": "hf", "engine_version": version("transformers")}
    assert (tmp_path / "train.json").read_text().count('"engine": "hf"') == 1


def test_the_vllm_extra_is_pinned_inside_trls_supported_range(monkeypatch):
    import trl.import_utils as iu

    (pin,) = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["vllm"]
    name, wanted = pin.split("==")
    assert name == "vllm"
    monkeypatch.setattr(iu, "_is_package_available", lambda pkg, return_version=False: (True, wanted))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # TRL warns outside its range
        assert iu.is_vllm_available()
    monkeypatch.setattr(iu, "_is_package_available", lambda pkg, return_version=False: (True, "0.32.0"))
    with pytest.warns(UserWarning, match="supports vLLM versions"):  # the check itself can fail
        iu.is_vllm_available()


def test_the_gpu_smoke_bench_stops_at_once_without_a_gpu():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_smoke.py"), "--steps", "1"], capture_output=True,
                         text=True, cwd=ROOT, timeout=120)  # fmt: skip
    assert out.returncode == 2
    assert "needs a CUDA GPU: torch.cuda.is_available() is False" in out.stderr
    assert out.stdout == ""  # it stopped before building or training anything
