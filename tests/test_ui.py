"""The leaderboard in a real browser: a tiny paper through Snakemake, `harness ui` over its store, and
headless Chromium (driven by Playwright) on the paper's runs table, checked against the store.

Needs /usr/bin/chromium (apt-get installs it when we are root, else the test is skipped with that
reason) and the `playwright` package (the test extra); no browser is ever downloaded. Leaves a
screenshot at results/test-artifacts/ui-leaderboard.png.

MLflow 3.17's UI opens an experiment on its GenAI overview and shows no metric columns; the runs
view of the "Model training" workflow (URL parameters) with the metric chosen under "Columns" is the
leaderboard.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest

from tests.conftest import (
    ROOT,
    clean_env,
    debian_package,
    free_port,
    stop_group,
    wait_until_up,
)

sync_api = pytest.importorskip("playwright.sync_api", reason="the UI test needs `pip install playwright` (test extra)")
expect = sync_api.expect
expect.set_options(timeout=60_000)  # Playwright's 5 s is short for a React app on a loaded 2-core machine

pytestmark = pytest.mark.slow
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]  # fmt: skip
METRIC = "toy_arith/pass_at_1"
SCREENSHOT = ROOT / "results" / "test-artifacts" / "ui-leaderboard.png"
VIEWPORT = {"width": 1600, "height": 1000}


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium, installed with apt-get when missing (Playwright cannot download browsers here)."""
    return debian_package("chromium", CHROMIUM, "the UI test")
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip(f"the UI test needs {CHROMIUM}: `apt-get install chromium` (needs root and apt-get)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "-o", "DPkg::Lock::Timeout=600", "chromium"]
    proc = subprocess.run(install, capture_output=True, text=True, env=env, timeout=1800)
    if proc.returncode != 0:  # a stale package list: refresh it once
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env, timeout=600)
        proc = subprocess.run(install, capture_output=True, text=True, env=env, timeout=1800)
    if proc.returncode != 0 or not Path(CHROMIUM).exists():
        pytest.fail(
            f"apt-get could not install chromium ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return CHROMIUM


@pytest.fixture(scope="module")
def store(smoke_run) -> Path:
    """A working directory whose results/mlflow.db holds the smoke paper of test_e2e (run once per session; after
    test_e2e changed one of its values and re-ran it, when that ran first)."""
    assert (smoke_run / "results" / "mlflow.db").is_file()
    return smoke_run


@pytest.fixture(scope="module")
def runs(store) -> list[dict]:
    """The per-seed runs of the smoke paper, as the store has them."""
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{store / 'results' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("smoke")
    found = client.search_runs([exp.experiment_id], "tags.`harness.kind` = 'run'")
    assert len(found) == 6  # 3 variants x 2 seeds
    return [{"id": r.info.run_id, "name": r.info.run_name, "variant": r.data.tags["variant"],
             "metric": r.data.metrics[METRIC], "experiment_id": exp.experiment_id} for r in found]  # fmt: skip


@pytest.fixture(scope="module")
def ui(store) -> Iterator[str]:
    """`harness ui` serving the store of `store`, stopped (with every worker) at the end."""
    port, log = free_port(), store / "ui.log"
    env = clean_env() | {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    cmd = [sys.executable, "-m", "harness", "ui", "--host", "127.0.0.1", "--port", str(port)]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=store, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, proc, log, "`harness ui`")
        assert f"sqlite:///{(store / 'results' / 'mlflow.db').resolve()}" in log.read_text().splitlines()[0]
        yield url
    finally:
        killed = stop_group(proc)
    assert not killed, (
        f"`harness ui` left processes behind after SIGTERM (killed: {killed}):\n{log.read_text()[-3000:]}"
    )


@pytest.fixture(scope="module")
def leaderboard(chromium, ui, runs):
    """The runs table of the paper's experiment in headless Chromium, set up as a leaderboard: the
    per-seed runs, ranked by the benchmark metric, with that metric and the variant as columns."""
    query = {"workflowType": "machine_learning", "searchFilter": "tags.`harness.kind` = 'run'",
             "orderByKey": f"metrics.`{METRIC}`", "orderByAsc": "false"}  # fmt: skip
    url = f"{ui}/#/experiments/{runs[0]['experiment_id']}/runs?{urlencode(query, quote_via=quote)}"
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, timeout=120_000)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(60_000)
            page.goto(url, wait_until="domcontentloaded", timeout=120_000)
            expect(page.get_by_text(f"{len(runs)} matching runs")).to_be_visible(timeout=120_000)
            with_columns(page, hide=["Dataset", "Source", "Models"], show=[METRIC, "variant"])
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=SCREENSHOT)
            yield page
        finally:
            browser.close()


def with_columns(page, hide: list[str], show: list[str]) -> None:
    """Toggle columns in the "Columns" picker; close MLflow's assistant panel, which takes a third of the page."""
    close = page.locator('[data-component-id="mlflow.assistant.chat_panel.close"]')
    try:
        close.click(timeout=15_000)  # it opens itself on a browser's first visit
    except sync_api.TimeoutError:
        pass
    page.get_by_role("button", name="Columns", exact=True).click()
    picker = page.get_by_role("dialog")
    for name in hide + show:
        picker.get_by_text(name, exact=True).click()
    page.keyboard.press("Escape")
    for name in show:  # double-clicking the edge of a header fits the column to its name (else cut at 100 px)
        page.locator(f'[role=columnheader][col-id$="`{name}`"] .ag-header-cell-resize').dblclick()
    for name in hide:
        expect(page.locator(f'[role=columnheader][col-id="attributes.`{name}`"]')).to_have_count(0)


def test_leaderboard_ranks_every_run_by_its_metric(leaderboard, runs):
    page = leaderboard
    header = page.locator(f'[role=columnheader][col-id="metrics.`{METRIC}`"]')
    expect(header).to_contain_text(METRIC)
    expect(header).to_be_in_viewport()
    shown = []
    for run in runs:
        row = page.locator(f'[row-id="{run["id"]}"]')
        expect(page.get_by_text(run["name"], exact=True)).to_be_visible()
        expect(row.locator('[col-id="attributes.`Run Name`"]')).to_contain_text(run["name"])
        expect(row.locator('[col-id="tags.`variant`"]')).to_have_text(run["variant"])
        cell = row.locator(f'[col-id="metrics.`{METRIC}`"]')
        expect(cell).to_have_text(re.compile(r"\d"))  # rendered, not a placeholder
        assert float(cell.inner_text()) == pytest.approx(run["metric"], abs=1e-3), run["name"]
        shown.append((int(row.first.get_attribute("row-index")), float(cell.inner_text())))
    values = [v for _, v in sorted(shown)]
    assert sorted(i for i, _ in shown) == list(range(len(runs)))
    assert values == sorted(values, reverse=True), f"not ranked by {METRIC}: {values}"
    expect(page.get_by_text("toy/gold/mean")).to_have_count(0)  # the aggregate runs are filtered out


def test_the_link_harness_ui_prints_opens_the_leaderboard_with_its_numbers_and_ranked(leaderboard, store):
    """What a user sees from the link alone: the experiment's description carries the generated leaderboard (read
    off the page, number by number), and the aggregate runs come sorted by the headline metric, best first."""
    link = next(line.split(": ", 1)[1] for line in (store / "ui.log").read_text().splitlines()
                if line.startswith("  smoke: "))  # fmt: skip
    board = json.loads((store / "results" / "runs" / "smoke" / "toy" / "leaderboard.json").read_text())
    rows = [r for r in board["rows"] if r["task"] == board["rows"][0]["task"]]
    page = leaderboard.context.browser.new_page(viewport=VIEWPORT)  # a fresh page of the same browser, at the link
    try:
        page.goto(link, wait_until="domcontentloaded", timeout=120_000)
        expect(page.get_by_text(f"{len(rows)} matching runs")).to_be_visible(timeout=120_000)
        text = page.inner_text("body")
        for r in rows:
            m = r["metrics"]["pass@1"]
            line = f"{r['rank']}\t{r['variant']}\t{r['model']}\t{m['mean']:.3f} ± {m['std']:.3f}"
            assert line in text, f"the description lacks {line!r}"
        for c in board["claims"]:
            assert f"[{c['verdict']}] {c['statement']}" in text
        names = page.locator('[role=row][row-index]:has([col-id="attributes.`Run Name`"])')
        expect(names).to_have_count(len(rows))
        at = {int(names.nth(i).get_attribute("row-index")):
              names.nth(i).locator('[col-id="attributes.`Run Name`"]').inner_text().split()[-1]  # after its colour
              for i in range(len(rows))}  # fmt: skip
        shown = [at[i] for i in sorted(at)]
    finally:
        page.close()
    by_name = {f"toy/{r['variant']}/mean": r["metrics"]["pass@1"]["mean"] for r in rows}
    assert sorted(shown) == sorted(by_name), shown
    assert [by_name[n] for n in shown] == sorted(by_name.values(), reverse=True), f"not best first: {shown}"


def test_screenshot_of_the_leaderboard(leaderboard):
    data = SCREENSHOT.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (VIEWPORT["width"], VIEWPORT["height"])
    assert len(data) > 30_000, f"{SCREENSHOT} is suspiciously small ({len(data)} bytes)"
