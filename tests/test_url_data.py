"""A paper's own data file, pinned by its digest (harness/files.py): pinned with `--pin`, fetched over real HTTP from a
local server into the cache, refused when its content changes, read offline by a stage at the scale that names it
(`scales.<s>.stages`), nested verl-style columns included.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import shutil
import threading
from pathlib import Path

import pytest

from harness.config.errors import ConfigError, FetchError
from tests.conftest import ROOT, write_bundle
from tests.test_offline import parquet

ROWS = [
    {"data_source": "x", "prompt": [{"role": "user", "content": f"What is {i} + {i}? Think step by step."}],
     "reward_model": {"ground_truth": str(2 * i), "style": "rule"}, "rephrased": f"Add {i} to itself."}
    for i in range(1, 6)
]  # fmt: skip
BUNDLE = """
paper: {title: a paper's own data file}
variants:
  base: {}
  one:
    stages: [{kind: grpo, data: train, rewards: [{name: exact_match}]}]
  more: {extends: one}
scales:
  toy:
    model: toy-tiny
    stages:
      one.stages.0: {dataset: authors-file, data_args: {limit: 1, repeat: 4}}
  paper: {}
"""


@pytest.fixture
def server(tmp_path):
    """A real HTTP server over tmp_path/www (stopped at the end)."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def project(tmp_path, server, monkeypatch):
    """configs/ with a url dataset (unpinned) served by `server`, and a bundle whose toy `one` stage reads it."""
    from harness.config import read

    www, base = server
    (www / "commit0").mkdir()
    (www / "commit0" / "train.parquet").write_bytes(parquet(ROWS))
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    file = tmp_path / "configs" / "datasets" / "authors-file.yaml"
    file.write_text(f"# the authors' file\nsource: url\nurl: {base}/commit0/train.parquet\n"
                    "prompt_field: prompt.0.content\nanswer_field: reward_model.ground_truth\n")  # fmt: skip
    monkeypatch.setattr(read, "CONFIGS", tmp_path / "configs")
    write_bundle(tmp_path / "papers", "own", BUNDLE)
    return tmp_path, file


def test_the_scale_stage_change_reads_the_file_only_where_it_is_named(project):
    from harness.config.load import load_paper

    tmp, _ = project
    toy = load_paper("own", "toy", papers_dir=tmp / "papers")
    assert toy.variants["one"].stages[0].dataset == "authors-file"
    assert toy.variants["more"].stages[0].dataset == "authors-file"  # inherits the stage, and the scale's change
    assert (toy.variants["one"].stages[0].data_args.limit, toy.variants["one"].stages[0].data_args.repeat) == (1, 4)
    assert toy.datasets["authors-file"].source == "url"
    paper = load_paper("own", "paper", papers_dir=tmp / "papers")
    assert paper.variants["one"].stages[0].dataset is None and paper.datasets == {}  # no change at this scale


def test_pin_fetch_and_read_offline(project, server):
    from harness import hub, offline
    from harness.config.stage import DataArgs
    from harness.pinning import pin
    from harness.stages.data import stage_rows

    tmp, file = project
    www, _ = server
    items = [i for i in hub.items_of(["own"], "toy", tmp / "papers") if i.repo_type == "file"]
    assert len(items) == 1
    with pytest.raises(ConfigError, match=r"authors-file.yaml: sha256: .* not pinned to its SHA-256: run `harness fet"):
        hub.fetch(items, tmp / "hf")
    assert not (tmp / "hf").exists()  # refused before anything downloads

    want = hashlib.sha256((www / "commit0" / "train.parquet").read_bytes()).hexdigest()
    pinned = pin(items, log=lambda _: None)  # downloads it from the server and hashes it
    assert [i.revision for i in pinned] == [want]
    assert f"\nsha256: {want}\n" in file.read_text() and file.read_text().startswith("# the authors' file\n")

    fetched = hub.fetch(hub.items_of(["own"], "toy", tmp / "papers"), tmp / "hf", log=lambda _: None)
    path = fetched[pinned[0]]
    assert path == tmp / "hf" / "files" / want / "train.parquet" and path.read_bytes() == (www / "commit0" /
                                                                                             "train.parquet").read_bytes()  # fmt: skip

    # offline: a stage reads the cached copy (the folder offline.offline_stage hands it), nested columns resolved
    from harness.config.load import load_paper

    rp = load_paper("own", "toy", papers_dir=tmp / "papers")
    folder = Path(offline.local_dataset(rp.datasets["authors-file"], tmp / "hf"))
    (www / "commit0" / "train.parquet").unlink()  # the server no longer has it: the cache is all there is
    rows = stage_rows(rp.datasets["authors-file"], "train", DataArgs(limit=1, repeat=4), folder)
    assert rows["prompt"] == ["What is 1 + 1? Think step by step."] * 4 and rows["answer"] == ["2"] * 4
    assert hub.fetch(pinned, tmp / "hf", log=lambda _: None)[pinned[0]] == path  # a good copy: no download

    # the authors' instruction at the end of every prompt is removed (the scale's instruction asks both sides)
    file.write_text(file.read_text() + 'shipped_instruction: "Think step by step."\n')
    shipped = load_paper("own", "toy", papers_dir=tmp / "papers").datasets["authors-file"]
    assert stage_rows(shipped, "train", DataArgs(limit=2), folder)["prompt"] == ["What is 1 + 1?", "What is 2 + 2?"]
    file.write_text(file.read_text().replace("Think step by step.", "Reason first."))
    wrong = load_paper("own", "toy", papers_dir=tmp / "papers").datasets["authors-file"]
    with pytest.raises(ValueError, match=r"row 0: the prompt does not end with the dataset's shipped_instruction"):
        stage_rows(wrong, "train", DataArgs(limit=2), folder)

    # the plan waits for the file's marker, and the marker names the item again
    from harness.plan import Plan

    plan = Plan(["own"], "toy", papers_dir=tmp / "papers")
    run = next(r for r in plan.runs("own") if r.variant == "one")
    marker = f"results/hub/datasets/train.parquet@{want}.json"
    assert marker in plan.stage_inputs(run, 0)
    assert hub.marker_items(marker) == [pinned[0]]


def test_changed_content_is_refused(project, server):
    from harness import hub

    tmp, file = project
    www, _ = server
    file.write_text(file.read_text() + f"sha256: {'ab' * 32}\n")
    with pytest.raises(FetchError, match=r"has sha256 [0-9a-f]{64}, not the pinned abab.*its content changed"):
        hub.fetch(hub.items_of(["own"], "toy", tmp / "papers"), tmp / "hf", log=lambda _: None)
    assert not list((tmp / "hf").rglob("*.parquet"))  # nothing kept
    (www / "commit0" / "train.parquet").unlink()
    with pytest.raises(FetchError, match="cannot be downloaded"):
        hub.fetch(hub.items_of(["own"], "toy", tmp / "papers"), tmp / "hf", log=lambda _: None)


def test_fetch_reads_every_row_and_refuses_a_wrong_column_before_any_marker(project, server, monkeypatch, capsys):
    """`harness fetch` reads the fetched file as a stage will: a column the config names but the file lacks stops
    it on the head node (exit 2, the config file and the missing path named, no marker written), and a Snakemake
    marker fetch refuses the same way; with the right column it reports the rows read and writes the marker."""
    from harness import hub
    from harness.cli import main
    from harness.pinning import pin

    tmp, file = project
    monkeypatch.setenv("HF_HOME", str(tmp / "hf"))
    monkeypatch.chdir(tmp)
    pinned = pin([i for i in hub.items_of(["own"], "toy", tmp / "papers") if i.repo_type == "file"], log=lambda _: None)
    good = file.read_text()
    file.write_text(good.replace("answer_field: reward_model.ground_truth", "answer_field: reward_model.answer"))
    capsys.readouterr()
    assert main(["--papers-dir", str(tmp / "papers"), "fetch", "own", "--scale", "toy"]) == 2
    err = capsys.readouterr().err
    assert f"error: {file}: no 'reward_model.answer' in the dataset's rows (stopped at 'answer'" in err, err
    marker = tmp / f"results/hub/datasets/train.parquet@{pinned[0].revision}.json"
    assert not marker.exists()
    assert main(["fetch", "--marker", str(marker.relative_to(tmp))]) == 2
    assert not marker.exists()

    file.write_text(good)
    assert main(["--papers-dir", str(tmp / "papers"), "fetch", "own", "--scale", "toy"]) == 0
    assert f"{file}: 5 rows read" in capsys.readouterr().out
    assert marker.is_file()


@pytest.mark.parametrize(
    "change, key, fragment",
    [
        ("nope.stages.0: {dataset: authors-file}", "scales.toy.stages.nope.stages.0", "names no stage of this bundle"),
        ("one.stages.3: {dataset: authors-file}", "scales.toy.stages.one.stages.3", "more.stages.0, one.stages.0"),
        ("one.stages.0: {kind: sft}", "scales.toy.stages.one.stages.0.kind", "not its kind"),
        (
            "one.stages.0: {objective: {aux: [{name: nope}]}}",
            "scales.toy.stages.one.stages.0.objective.aux.0.name",
            "nope",
        ),
        ("one.stages.0: {data_args: {limit: 0}}", "scales.toy.stages.one.stages.0.data_args.limit", "at least 1"),
        ("one.stages.0: {dataset: missing-one}", "scales.toy.stages.one.stages.0.dataset", "missing-one"),
    ],
)
def test_a_bad_stage_change_is_refused_naming_its_key(project, change, key, fragment):
    from harness.config.load import load_paper

    tmp, _ = project
    write_bundle(tmp / "papers", "own", BUNDLE.replace("one.stages.0: {dataset: authors-file, data_args: {limit: 1, "
                                                       "repeat: 4}}", change))  # fmt: skip
    with pytest.raises(ConfigError) as e:
        load_paper("own", "toy", papers_dir=tmp / "papers")
    assert f": {key}:" in str(e.value) and fragment in str(e.value), str(e.value)


def test_url_dataset_configs_are_checked(project):
    from harness.config.read import load_component

    tmp, file = project
    for text, key in [("source: url\n", "url"), ("source: url\nurl: https://x/a.txt\n", "url"),
                      ("source: url\nurl: https://x/a.parquet\nsha256: abc\n", "sha256"),
                      ("source: hub\nhub_path: a/b\nsha256: " + "0" * 64 + "\n", "sha256")]:  # fmt: skip
        file.write_text(text)
        with pytest.raises(ConfigError, match=rf"authors-file.yaml: {key}: "):
            load_component("datasets", "authors-file", tmp / "x", "dataset")


def test_a_shipped_rewording_is_the_twin_and_a_file_without_one_is_refused(project, server):
    from harness import hub, offline
    from harness.config.load import load_paper
    from harness.config.stage import DataArgs
    from harness.pinning import pin
    from harness.stages.data import stage_rows

    tmp, file = project
    write_bundle(
        tmp / "papers",
        "own",
        BUNDLE.replace(
            "{dataset: authors-file, data_args: {limit: 1, repeat: 4}}",
            "{dataset: authors-file, data_args: {paraphrase: true}}",
        ),
    )
    with pytest.raises(ConfigError, match=r"scales.toy.stages.one.stages.0.data_args.paraphrase: dataset "
                                          r"'authors-file' ships no rewordings"):  # fmt: skip
        load_paper("own", "toy", papers_dir=tmp / "papers")
    file.write_text(file.read_text() + "paraphrase_field: rephrased\n")
    rp = load_paper("own", "toy", papers_dir=tmp / "papers")
    hub.fetch(pin([i for i in hub.items_of(["own"], "toy", tmp / "papers") if i.repo_type == "file"],
                  log=lambda _: None), tmp / "hf", log=lambda _: None)  # fmt: skip
    rp = load_paper("own", "toy", papers_dir=tmp / "papers")
    folder = Path(offline.local_dataset(rp.datasets["authors-file"], tmp / "hf"))
    rows = stage_rows(rp.datasets["authors-file"], "pool", DataArgs(limit=2, paraphrase=True), folder)
    assert rows["prompt"] == ["What is 1 + 1? Think step by step.", "Add 1 to itself.",
                              "What is 2 + 2? Think step by step.", "Add 2 to itself."]  # fmt: skip
    assert rows["pair"] == [0, 0, 1, 1] and rows["view"] == [0, 1, 0, 1] and "paraphrase" not in rows.column_names
    assert "answer" not in rows.column_names  # a pool: labels hidden
