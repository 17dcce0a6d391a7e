"""harness.evaluation.evaluate: engine choice, per-task extractors, grading of lm-eval's raw output, and the
protocol written with a real evaluation of a toy model."""

from __future__ import annotations

import json

import pytest

from harness.config.components import EvalConfig
from harness.device import resolve_engine
from harness.evaluation.evaluate import _score, evaluate, extractor_for


@pytest.mark.parametrize("cuda, vllm, engine", [(True, True, "vllm"), (False, True, "hf"), (False, False, "hf")])
def test_auto_engine_is_vllm_only_with_a_gpu_and_vllm(cuda, vllm, engine):  # a GPU without vllm: tests/test_engine.py
    assert resolve_engine("auto", cuda_visible=cuda, vllm=vllm) == engine
    assert resolve_engine("hf", cuda_visible=cuda, vllm=vllm) == "hf"


def test_vllm_asked_for_without_gpu_or_package_is_refused():
    with pytest.raises(RuntimeError, match="no GPU is visible"):
        resolve_engine("vllm", cuda_visible=False, vllm=True)
    with pytest.raises(RuntimeError, match="vllm package is not installed"):
        resolve_engine("vllm", cuda_visible=True, vllm=False)
    assert resolve_engine("vllm", cuda_visible=True, vllm=True) == "vllm"


def test_vllm_engine_switches_trl_generation_on(monkeypatch, tmp_path):
    """GRPO stages sample with TRL's colocated vLLM when the engine resolves to vllm (a GPU node)."""
    from harness import device
    from harness.stages.grpo import GRPOArgs, generation_args
    from harness.stages.plumbing import common_args

    args = {"max_steps": 1, "generation_engine": "auto"}
    assert generation_args(args) == {"use_vllm": False}  # this machine: no GPU
    monkeypatch.setattr(device, "cuda", lambda: True)
    monkeypatch.setattr(device, "vllm_installed", lambda: True)
    assert generation_args(args) == {"use_vllm": True, "vllm_mode": "colocate"}
    args["generation_engine"] = "hf"
    assert generation_args(args) == {"use_vllm": False}
    monkeypatch.undo()
    assert "generation_engine" not in common_args(GRPOArgs, args, 0, tmp_path)


def test_task_extractors_and_group_subtasks():
    cfg = EvalConfig(tasks=["aime24", "mmlu_pro"], extractors={"mmlu_pro": "choice_letter"})
    assert extractor_for(cfg, "aime24")[0] == "boxed_or_last_number"
    assert extractor_for(cfg, "mmlu_pro")[0] == "choice_letter"
    # a subtask is graded with its group's extractor, found through lm-eval's group_subtasks, not its name
    out = {"samples": {"law": [_sample(0, "(B)", ["The answer is (B)"])]}, "results": {"law": {}},
           "group_subtasks": {"mmlu_pro": ["law"]}}  # fmt: skip
    assert _score(cfg, out)[0]["law"]["pass@1"] == 1.0


def _sample(doc_id, target, resps):
    return {"doc_id": doc_id, "target": target, "resps": [resps]}


def test_scoring_lm_eval_output_pools_groups_and_skips_loglikelihood_tasks():
    cfg = EvalConfig(tasks=["grp", "mc"], extractors={"grp": "choice_letter"})
    out = {
        "samples": {
            "grp_a": [_sample(0, "(B)", ["The answer is (B)", "Answer: C"])],
            "grp_b": [_sample(0, "A", ["answer is A", "answer is A"]), _sample(1, "D", ["C", "B"])],
            "mc": [_sample(0, 2, [(-1.0, False), (-0.5, True)])],  # log-likelihood task: nothing to grade
        },
        "results": {"grp_a": {"acc": 0.5}, "grp_b": {"acc": 0.5}, "mc": {"acc,none": 1.0, "alias": "mc"}},
        "group_subtasks": {"grp": ["grp_a", "grp_b"]},
    }
    metrics, samples = _score(cfg, out)
    assert metrics["grp_a"]["pass@1"] == 0.5 and metrics["grp_b"]["pass@1"] == 0.5
    # pooled: questions (B: 1 of 2), (A: 2 of 2), (D: 0 of 2) -> pass@1 = (0.5 + 1 + 0) / 3, pass@2 = 2/3
    assert metrics["grp"]["pass@1"] == pytest.approx(0.5) and metrics["grp"]["pass@2"] == pytest.approx(2 / 3)
    assert metrics["grp"]["questions"] == 3 and metrics["grp"]["subtasks"] == ["grp_a", "grp_b"]
    assert metrics["mc"] == {"lm_eval": {"acc,none": 1.0}}
    assert [s["target"] for s in samples] == ["B", "A", "D"]


def test_every_result_carries_the_fingerprint(world, tmp_path):
    root, _ = world
    cfg = EvalConfig(tasks=["toy_arith"], n_samples=4, max_new_tokens=4, batch_size=64, limit=8)
    result = evaluate(str(root / "model"), cfg, 3, tmp_path / "eval", str(root / "data"))
    fp = result["protocol"]
    assert fp["seed"] == 3 and fp["n_samples"] == 4 and fp["temperature"] == 1.0 and fp["top_p"] == 1.0
    assert fp["max_new_tokens"] == 4 and fp["limit"] == 8 and fp["num_fewshot"] is None
    assert fp["engine"] == "hf" and fp["tensor_parallel_size"] == 1 and fp["dtype"] == "float32"
    assert fp["extractors"] == {"toy_arith": "boxed_or_last_number@1"}
    assert fp["task_versions"] == {"toy_arith": "1"}
    assert fp["apply_chat_template"] is False and fp["chat_template_sha"] is None
    for key in ("grader_version", "engine_version", "lm_eval_version", "transformers_version", "torch_version"):
        assert fp[key] and fp[key] != "absent", key
    on_disk = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert on_disk["protocol"] == fp and set(on_disk) == {"model", "metrics", "protocol", "seconds"}
    m = on_disk["metrics"]["toy_arith"]
    assert {"pass@1", "pass@4", "maj@4", "distinct_1", "distinct_2", "distinct_answers"} <= set(m)
    # response lengths: the response texts in the model's tokenizer's tokens (re-encoded, so not capped at 4)
    assert m["length/all"] > 0 and m["stderr/pass@1"] >= 0
    assert (tmp_path / "eval" / "passk.png").stat().st_size > 1000
    # a suite seed overrides the run's
    cfg.seed = 11
    assert evaluate(str(root / "model"), cfg, 3, tmp_path / "eval2", str(root / "data"))["protocol"]["seed"] == 11


# --------------------------------------------------------------------------- suite refusals (configs/eval/*.yaml)
EVAL_REFUSALS = [
    # (id, suite YAML, key, fragment)
    ("engine", "tasks: [toy_arith]\nengine: sglang\n", "engine", "sglang"),
    ("extractor", "tasks: [toy_arith]\nanswer_extractor: last_word\n", "answer_extractor", "last_word"),
    ("task-extractor", "tasks: [toy_arith]\nextractors: {toy_arith: choice_leter}\n", "extractors.toy_arith",
     "did you mean 'choice_letter'"),
    ("extractor-for-absent-task", "tasks: [toy_arith]\nextractors: {gpqa: choice_letter}\n", "extractors.gpqa",
     "not one of this suite's tasks"),
    ("greedy-repeats", "tasks: [toy_arith]\nn_samples: 4\ntemperature: 0\n", "temperature", "identical"),
    ("zero-samples", "tasks: [toy_arith]\nn_samples: 0\n", "n_samples", "at least 1"),
    ("judge-reward", "tasks: [toy_arith]\njudges: [{name: a, rewards: [{name: exact_matc}]}]\n", "judges.0.rewards.0.name",
     "did you mean 'exact_match'"),
    ("judge-group-aware", "tasks: [toy_arith]\njudges: [{name: a, rewards: [{name: majority_vote}]}]\n",
     "judges.0.rewards.0.name", "not a per-sample reward"),
    ("judge-args", "tasks: [toy_arith]\njudges: [{name: a, rewards: [{name: matches}]}]\n", "judges.0.rewards.0.args.pattern",
     "required argument missing"),
    ("judge-names", "tasks: [toy_arith]\njudges: [{name: a, rewards: [{name: format}]}, {name: a, rewards: [{name: format}]}]\n",
     "judges.1.name", "taken"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "key", "fragment"), [c[1:] for c in EVAL_REFUSALS], ids=[c[0] for c in EVAL_REFUSALS])
def test_eval_suite_refusal_names_file_and_key(tmp_path, monkeypatch, text, key, fragment):
    from harness.config import read
    from harness.config.errors import ConfigError

    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "bad.yaml").write_text(text)
    monkeypatch.setattr(read, "CONFIGS", tmp_path)
    with pytest.raises(ConfigError) as info:
        read.load_component("eval", "bad", tmp_path / "paper.yaml", "scales.toy.eval")
    assert str(info.value).startswith(f"{tmp_path / 'eval' / 'bad.yaml'}: {key}: "), str(info.value)
    assert fragment in str(info.value)


def test_one_line_metrics_shows_pass_at_n_only_with_several_samples():
    from harness.evaluation.results import one_line_metrics

    greedy = {"metrics": {"t": {"samples_per_question": 1, "pass@1": 0.2, "maj@1": 0.2}}}
    sampled = {"metrics": {"t": {"samples_per_question": 4, "pass@1": 0.2, "pass@4": 0.5, "maj@4": 0.3}}}
    assert one_line_metrics(greedy) == "t: pass@1 0.200 (one sample)"
    assert one_line_metrics(sampled) == "t: pass@1 0.200  pass@4 0.500  maj@4 0.300"


def test_an_instruction_reaches_every_question_and_the_protocol(world):
    from harness.evaluation.evaluate import ask_with_instruction, protocol, task_manager

    root, _ = world
    task = task_manager(["toy_arith"], str(root / "data")).load(["toy_arith"])["tasks"]["toy_arith"]
    doc = task.test_docs()[0]
    plain = task.doc_to_text(doc)
    ask_with_instruction(task, "Put the final answer within \\boxed{}.")
    assert task.doc_to_text(doc) == plain + "\n\nPut the final answer within \\boxed{}."
    cfg = EvalConfig(tasks=["toy_arith"])
    assert "instruction" not in protocol(cfg, "hf", 0, None, {})  # unset: earlier results keep their protocol
    cfg.instruction = "Put the final answer within \\boxed{}."
    assert protocol(cfg, "hf", 0, None, {})["instruction"] == cfg.instruction


def test_a_suite_can_ask_the_bare_question_as_training_does(tmp_path):
    """`ask: question`: a task's own template ("Question: ...\\nAnswer:", as lm-eval's aime tasks frame it) gives way
    to the dataset's question alone, then the instruction; that is the prompt lm-eval's requests carry."""
    import json

    from lm_eval.tasks import TaskManager

    from harness.evaluation.evaluate import ask_the_question, ask_with_instruction, protocol

    (tmp_path / "q.jsonl").write_text(json.dumps({"problem": "What is 2+3? ", "answer": "5"}) + "\n")
    (tmp_path / "framed.yaml").write_text(
        "task: framed\ndataset_path: json\ndataset_kwargs: {data_files: {test: " + str(tmp_path / "q.jsonl") + "}}\n"
        'output_type: generate_until\ntest_split: test\ndoc_to_text: "Question: {{problem}}\\nAnswer:"\n'
        'doc_to_target: "{{answer}}"\nmetric_list: [{metric: exact_match}]\n'
    )
    task = TaskManager(include_path=str(tmp_path)).load(["framed"])["tasks"]["framed"]
    doc = task.test_docs()[0]
    assert task.doc_to_text(doc) == "Question: What is 2+3? \nAnswer:"
    ask_the_question(task, "problem")
    ask_with_instruction(task, "Put the final answer within \\boxed{}.")
    task.build_all_requests(limit=1, rank=0, world_size=1)
    assert task.instances[0].arguments[0] == "What is 2+3?\n\nPut the final answer within \\boxed{}."
    cfg = EvalConfig(tasks=["framed"])
    assert "ask" not in protocol(cfg, "hf", 0, None, {})  # each task's template: earlier results keep their protocol
    cfg.ask = "question"
    assert protocol(cfg, "hf", 0, None, {})["ask"] == "question"


def test_asking_the_bare_question_needs_its_column(tmp_path):
    from harness.config.checks import check_eval
    from harness.config.errors import ConfigError

    check_eval(EvalConfig(tasks=["aime24", "minerva_math500"], ask="question"), tmp_path / "s.yaml")
    with pytest.raises(ConfigError, match=r"s.yaml: ask: no known question column for task\(s\) gpqa_diamond"):
        check_eval(EvalConfig(tasks=["aime24", "gpqa_diamond"], ask="question"), tmp_path / "s.yaml")
    with pytest.raises(ConfigError, match=r"s.yaml: ask: unknown way to ask 'bare'"):
        check_eval(EvalConfig(tasks=["aime24"], ask="bare"), tmp_path / "s.yaml")
