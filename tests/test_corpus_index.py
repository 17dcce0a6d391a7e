"""The paper-scale corpus of the retrieval environment (harness/corpora.py, harness/environments/corpus_index.py):
an index built in chunks on disk ranks and scores exactly as the in-memory BM25 does, opens memory-mapped in another
process alike, and refuses an unfinished build; `harness fetch` downloads a pinned corpus over real HTTP, indexes it
before writing its marker, and the stage that searches it is handed the index offline; configs that name a corpus
wrongly are refused naming the file and key.
"""

from __future__ import annotations

import gzip
import json
import random
import subprocess
import sys

import pytest

from harness.config.errors import ConfigError
from harness.environments.bm25 import BM25, words
from harness.environments.corpus_index import build_index, open_index, read_corpus
from tests.conftest import ROOT, write_bundle
from tests.test_url_data import parquet, server  # noqa: F401  (the HTTP server fixture)

WORDS = [f"w{i}" for i in range(60)]


def synthetic(n: int, seed: int = 0) -> list[str]:
    """Documents drawing from a small vocabulary (many ties, repeated words, some empty)."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 12))) for _ in range(n)]


def test_an_index_built_in_chunks_ranks_and_scores_as_the_in_memory_one(tmp_path):
    docs = synthetic(1500)
    info = build_index(iter(docs), tmp_path / "idx", chunk=97, log=lambda _: None)  # 16 chunks, the last short
    assert info["documents"] == 1500 and info["words"] == len({w for d in docs for w in words(d)})
    memory, disk = BM25(docs, k1=0.9, b=0.4), open_index(tmp_path / "idx", k1=0.9, b=0.4)
    assert list(disk.documents) == docs and list(disk.vocabulary) == sorted(disk.vocabulary)
    rng = random.Random(1)
    for _ in range(400):
        query = " ".join(rng.choice([*WORDS, "absent"]) for _ in range(rng.randint(1, 4)))
        k = rng.choice([1, 3, 10, 2000])
        assert disk.search(query, k) == memory.search(query, k), query  # the same documents and the same floats
    assert disk.search("absent", 5) == [] and disk.search("", 5) == []
    assert not (tmp_path / "idx.partial").exists()


def test_another_process_opens_the_index_memory_mapped_and_finds_the_same(tmp_path):
    docs = synthetic(300, seed=2)
    build_index(iter(docs), tmp_path / "idx", chunk=64, log=lambda _: None)
    queries = ["w1 w2", "w3", "w7 w7 w8 w9"]
    code = ("import json, sys; from harness.environments.corpus_index import open_index; "
            "i = open_index(sys.argv[1]); print(json.dumps([i.search(q, 5) for q in json.loads(sys.argv[2])]))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "idx"), json.dumps(queries)], cwd=ROOT,
                         capture_output=True, text=True, check=True, timeout=120)  # fmt: skip
    here = open_index(tmp_path / "idx")
    assert json.loads(out.stdout) == [[list(pair) for pair in here.search(q, 5)] for q in queries]


def test_an_unfinished_index_is_refused_and_a_rebuild_replaces_it(tmp_path):
    build_index(iter(["a b", "b c"]), tmp_path / "idx", log=lambda _: None)
    (tmp_path / "idx" / "index.json").unlink()  # as a build killed before its last write leaves it
    with pytest.raises(FileNotFoundError, match=r"holds no finished index \(index.json missing\): run `harness fetch"):
        open_index(tmp_path / "idx")
    build_index(iter(["x y", "y z", "z"]), tmp_path / "idx", log=lambda _: None)
    assert [i for i, _ in open_index(tmp_path / "idx").search("z", 5)] == [2, 1]


def test_corpus_files_are_read_by_their_text_columns(tmp_path):
    rows = [{"id": "0", "title": "Zorba", "text": "zorba color red"}, {"id": "1", "title": "Kela", "text": "blue"}]
    gz = tmp_path / "c.jsonl.gz"
    with gzip.open(gz, "wt") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    (tmp_path / "c.parquet").write_bytes(parquet(rows))
    for path in (gz, tmp_path / "c.parquet"):
        assert list(read_corpus(path, ["title", "text"])) == ["Zorba\nzorba color red", "Kela\nblue"]
    with pytest.raises(
        KeyError, match=r"c.jsonl.gz, line 1: no column 'contents' \(it has \['id', 'text', 'title'\]\)"
    ):
        list(read_corpus(gz, ["contents"]))


# ----------------------------------------------------------------------------- fetched, indexed, searched offline

CORPUS = [{"id": str(i), "contents": f'"Entity {name}"\n{name} color {color} city {city}'}
          for i, (name, color, city) in enumerate([("zorba", "red", "oslo"), ("kela", "blue", "lima"),
                                                   ("mivo", "green", "rome"), ("tasu", "red", "kyiv")])]  # fmt: skip
QUESTIONS = [
    {"question": "color of zorba?", "golden": ["red", "crimson"]},
    {"question": "color of kela?", "golden": ["blue"]},
]
BUNDLE = """
paper: {title: a search agent on a fetched corpus}
variants:
  base: {}
  search:
    stages: [{kind: multiturn_grpo, data: train, environment: {name: retrieval, args: {top_k: 2}},
              rewards: [{name: episode_reward}]}]
scales:
  toy:
    model: toy-tiny
    eval: wiki-episodes
    instruction: "Search with <search>words</search>, answer in <answer></answer>."
    stages:
      search.stages.0: {dataset: wiki-questions}
  paper: {}
"""
SEARCH_R1 = {"call": ["<search>", "</search>"], "result": ["\n\n<information>", "</information>\n\n"],
             "answer": ["<answer>", "</answer>"], "separator": "\n"}  # fmt: skip


@pytest.fixture
def project(tmp_path, server, monkeypatch):  # noqa: F811
    """configs/ with a question file naming a corpus, both served by `server` (unpinned), and a bundle searching it."""
    import shutil

    from harness.config import read

    www, base = server
    with gzip.open(www / "wiki.jsonl.gz", "wt") as f:
        f.writelines(json.dumps(r) + "\n" for r in CORPUS)
    (www / "questions.parquet").write_bytes(parquet(QUESTIONS))
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    datasets = tmp_path / "configs" / "datasets"
    (datasets / "wiki-corpus.yaml").write_text(f"source: url\nurl: {base}/wiki.jsonl.gz\ntext_fields: [contents]\n")
    (datasets / "wiki-questions.yaml").write_text(f"source: url\nurl: {base}/questions.parquet\nprompt_field: question"
                                                  "\nanswer_field: golden\ncorpus: wiki-corpus\n")  # fmt: skip
    suite = {"tasks": ["wiki_search"], "environment": {"name": "retrieval", "args": {"top_k": 2, "match": "em",
             **SEARCH_R1}}, "dataset": "wiki-questions", "n_samples": 2, "temperature": 1.0, "max_new_tokens": 6,
             "max_turns": 2}  # fmt: skip
    (tmp_path / "configs" / "eval" / "wiki-episodes.yaml").write_text(json.dumps(suite))
    monkeypatch.setattr(read, "CONFIGS", tmp_path / "configs")
    write_bundle(tmp_path / "papers", "searchy", BUNDLE)
    return tmp_path, datasets


def test_fetch_indexes_the_corpus_before_its_marker_and_the_stage_searches_it_offline(project, monkeypatch, capsys):
    from harness import hub
    from harness.cli import main
    from harness.config.load import load_paper
    from harness.pinning import pin
    from harness.plan import Plan
    from harness.stages.multiturn import environment_factory

    tmp, datasets = project
    monkeypatch.setenv("HF_HOME", str(tmp / "hf"))
    monkeypatch.chdir(tmp)
    items = hub.items_of(["searchy"], "toy", tmp / "papers")
    assert sorted(i.file.name for i in items if i.repo_type == "file") == ["wiki-corpus.yaml", "wiki-questions.yaml"]
    pin([i for i in items if i.repo_type == "file"], log=lambda _: None)

    rp = load_paper("searchy", "toy", papers_dir=tmp / "papers")
    corpus = rp.datasets["wiki-corpus"]
    marker = tmp / hub.dataset_marker(corpus)
    plan = Plan(["searchy"], "toy", papers_dir=tmp / "papers")
    run = next(r for r in plan.runs("searchy") if r.variant == "search")
    assert hub.dataset_marker(corpus) in plan.stage_inputs(run, 0)  # the stage waits for the indexed corpus

    capsys.readouterr()
    assert hub.dataset_marker(corpus) in plan.eval_hub_inputs(run, "model")  # and so does the episode suite
    assert main(["--papers-dir", str(tmp / "papers"), "fetch", "searchy", "--scale", "toy"]) == 0
    out = capsys.readouterr().out
    assert "index of 4 documents" in out and f"{datasets / 'wiki-questions.yaml'}: 2 rows read" in out
    assert marker.is_file()
    assert main(["--papers-dir", str(tmp / "papers"), "fetch", "searchy", "--scale", "toy"]) == 0
    assert "built before (4 documents)" in capsys.readouterr().out  # a second fetch indexes nothing

    # offline, the stage is handed the index and its environment searches it (the server is gone)
    from harness.offline import offline_stage

    for f in ("wiki.jsonl.gz", "questions.parquet"):
        (tmp / "www" / f).unlink()
    job = offline_stage(plan.stage_job(run, 0), rp.models["toy-tiny"], tmp / "hf")
    assert job.corpus is not None and (job.corpus / "index.json").is_file()
    env = environment_factory(job)()
    env.reset({"prompt": "color of zorba?", "answer": "red"})
    turn = env.step("[zorba color]")
    # zorba's passage first; every passage holds "color" equally, so the tie goes to the lower index (kela)
    assert turn.observation == '="Entity zorba"\nzorba color red city oslo | "Entity kela"\nkela color blue city lima;'
    assert env.step("red").done and env.reward() == 1.0


def test_fetch_refuses_a_corpus_without_its_column_and_writes_no_marker(project, monkeypatch, capsys):
    from harness import hub
    from harness.cli import main
    from harness.config.load import load_paper
    from harness.pinning import pin

    tmp, datasets = project
    monkeypatch.setenv("HF_HOME", str(tmp / "hf"))
    monkeypatch.chdir(tmp)
    pin([i for i in hub.items_of(["searchy"], "toy", tmp / "papers") if i.repo_type == "file"], log=lambda _: None)
    file = datasets / "wiki-corpus.yaml"
    file.write_text(file.read_text().replace("[contents]", "[title, text]"))
    capsys.readouterr()
    assert main(["--papers-dir", str(tmp / "papers"), "fetch", "searchy", "--scale", "toy"]) == 2
    err = capsys.readouterr().err
    assert f"error: {file}: " in err and "line 1: no column 'title'" in err, err
    corpus = load_paper("searchy", "toy", papers_dir=tmp / "papers").datasets["wiki-corpus"]
    assert not (tmp / hub.dataset_marker(corpus)).exists()


@pytest.mark.parametrize(
    "file, change, key, fragment",
    [
        ("wiki-questions", ("corpus: wiki-corpus", "corpus: toy-arith"), "corpus", "toy-arith.yaml is no corpus"),
        ("wiki-questions", ("corpus: wiki-corpus", "corpus: nowhere"), "corpus", "nowhere"),
        ("wiki-corpus", ("source: url", "source: url\ncorpus: wiki-corpus"), "corpus", "names no corpus of its own"),
        ("wiki-corpus", ("[contents]", "[]"), "text_fields", "at least one column"),
        (
            "toy-arith",
            ("source: toy-arithmetic", "source: toy-arithmetic\ncorpus: wiki-corpus"),
            "corpus",
            "writes its own",
        ),
    ],
)
def test_a_corpus_named_wrongly_is_refused_naming_the_file_and_key(project, file, change, key, fragment):
    from harness.config.load import load_paper
    from harness.config.read import load_component

    tmp, datasets = project
    path = datasets / f"{file}.yaml"
    assert change[0] in path.read_text()
    path.write_text(path.read_text().replace(*change))
    with pytest.raises(ConfigError, match=key) as e:
        load_component("datasets", file, path, "") if file != "wiki-questions" else load_paper(
            "searchy", "toy", papers_dir=tmp / "papers")  # fmt: skip
    assert fragment in str(e.value) and path.name in str(e.value)


def test_a_search_stage_on_fetched_questions_without_a_corpus_is_refused(project):
    from harness.config.load import load_paper

    tmp, datasets = project
    path = datasets / "wiki-questions.yaml"
    path.write_text(path.read_text().replace("corpus: wiki-corpus\n", ""))
    with pytest.raises(ConfigError, match=r"scales.toy.stages.search.stages.0.environment|variants.search.stages.0."
                                          r"environment") as e:  # fmt: skip
        load_paper("searchy", "toy", papers_dir=tmp / "papers")
    assert "'retrieval' searches a corpus, and dataset wiki-questions names none" in str(e.value)


def test_common_words_are_scored_only_where_they_can_change_the_top_k(monkeypatch):
    """A query mixing rare and common words takes MaxScore's short way when its bound allows and the full sum when
    it does not; both agree with scoring every posting, float for float."""
    import harness.environments.bm25 as bm25

    rng = random.Random(3)
    rare = [f"r{i}" for i in range(400)]  # each in about 1% of the documents; "the" in all
    docs = [" ".join(["the"] * rng.randint(1, 3) + rng.sample(rare, 4)) for _ in range(3000)]
    docs[17] += " zorba zorba"
    index = BM25(docs)
    took = []
    monkeypatch.setattr(BM25, "_score", lambda self, d, f, _s=BM25._score: took.append(len(d)) or _s(self, d, f))
    queries = [("the zorba", 1), ("the zorba", 3), ("the r1 zorba", 3), ("the r1 r2", 5), ("the", 2)]
    short = [index.search(q, k) for q, k in queries]
    # "the zorba", k=1: only zorba's document is scored (its "the" looked up there); k=3: one candidate is too few,
    # so every posting is scored; then the documents holding a rarer word; "the" alone: every posting
    assert took == [
        1,
        1 + sum("r1" in d.split() for d in docs),
        len({i for i, d in enumerate(docs) if {"r1", "r2"} & set(d.split())}),
    ], took
    monkeypatch.setattr(bm25, "COMMON", 1.0)  # no word is common: every posting scored
    took.clear()
    assert [index.search(q, k) for q, k in queries] == short and not took
    assert short[0] == [(17, short[0][0][1])] and short[1][0][0] == 17


def test_the_episode_suite_reads_its_fetched_questions_and_searches_the_index_offline(project, world, monkeypatch):
    """A paper-scale episode suite (EvalConfig.dataset) on the toy model: its questions from the hub cache, each
    with the instruction, its corpus's index searched, list golds graded by SQuAD EM, the protocol recorded."""
    from harness import hub
    from harness.cli import main
    from harness.config.load import load_paper
    from harness.evaluation.episodes import evaluate_episodes, fetched_questions
    from harness.pinning import pin

    tmp, _ = project
    root, _ = world
    monkeypatch.setenv("HF_HOME", str(tmp / "hf"))
    monkeypatch.chdir(tmp)
    pin([i for i in hub.items_of(["searchy"], "toy", tmp / "papers") if i.repo_type == "file"], log=lambda _: None)
    assert main(["--papers-dir", str(tmp / "papers"), "fetch", "searchy", "--scale", "toy"]) == 0
    for f in ("wiki.jsonl.gz", "questions.parquet"):
        (tmp / "www" / f).unlink()
    rp = load_paper("searchy", "toy", papers_dir=tmp / "papers")
    questions = fetched_questions(rp.datasets, rp.eval, tmp / "hf")
    assert [r["answer"] for r in questions.rows] == ['["red", "crimson"]', '["blue"]']
    assert questions.corpus is not None and (questions.corpus / "index.json").is_file()
    result = evaluate_episodes(str(root / "model"), rp.eval, 0, tmp / "eval", None, questions)
    metrics = result["metrics"]["wiki_search"]
    assert metrics["questions"] == 2 and metrics["samples_per_question"] == 2
    assert result["protocol"]["environment"]["args"]["call"] == ["<search>", "</search>"]
    first = json.loads((tmp / "eval" / "samples.jsonl").read_text().splitlines()[0])
    assert first["target"] == '["red", "crimson"]' and len(first["episodes"]) == 2


def test_the_search_r1_protocol_parses_calls_and_tagged_answers_and_grades_each_gold(tmp_path):
    from harness.environments.retrieval import retrieval

    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in [{"id": "0", "text": "Zorba is crimson red"},
                                                              {"id": "1", "text": "Kela is the blue one"}]))  # fmt: skip
    make = retrieval(str(corpus), top_k=1, match="em", **SEARCH_R1)
    env = make()
    assert env.stop == ("</search>",)
    env.reset({"prompt": "color of zorba?", "answer": '["Crimson red", "scarlet"]'})
    turn = env.step("<think>look it up</think><search>zorba color</search>")
    assert turn.tool_call and turn.observation == "\n\n<information>Zorba is crimson red</information>\n\n"
    assert env.step("<search> ? </search>").invalid
    done = env.step("<think>found</think><answer>The crimson  red.</answer>")
    assert done.done and env.reward() == 1.0 and env.stats()["hit"] == 1.0 and env.stats()["tool_calls"] == 2

    f1 = retrieval(str(corpus), match="f1", **SEARCH_R1)()
    f1.reset({"prompt": "q", "answer": '["crimson red"]'})
    f1.step("<answer>red</answer>")
    assert f1.reward() == pytest.approx(2 / 3) and f1.stats()["success"] == 0.0  # partial credit, no EM
    untagged = retrieval(str(corpus), match="em", **SEARCH_R1)()
    untagged.reset({"prompt": "q", "answer": "red"})
    untagged.step("red")  # a final turn without answer tags answers nothing
    assert untagged.reward() == 0.0


@pytest.mark.parametrize(
    "args, fragment",
    [
        ({"match": "fuzzy"}, "match: one of exact, em, f1"),
        ({"call": ["<search>"]}, "call: [opening, closing]"),
        ({"answer": ["<answer>", ""]}, "answer: [opening, closing]"),
        ({"call": ["<s>", "  "]}, "is blank"),
    ],
)
def test_bad_protocol_arguments_are_refused(args, fragment):
    from harness.environments import ENVIRONMENTS

    problem = ENVIRONMENTS.get("retrieval").args_problem(args)
    assert problem is not None and fragment in problem[1]
