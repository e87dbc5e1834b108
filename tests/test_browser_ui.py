"""Comparing explanations in the MLflow UI's own views, in headless Chromium against a real ``mlflow server``.

Three runs of ``main`` on a small Japanese data set: training seeds 1 and 2, and seed 1 with the Trainer
callback. The checks follow what a user does (issue #11): the artifact-evaluation view on the per-sentence
table grouped by text shows every run's top words (and token strip) for the same sentence; an image key
names the same sentence in every run; the callback run's image card shows a picture when the view opens;
the compare page's Artifacts section shows the runs' summary pictures side by side. Screenshots go to
``test-artifacts/``.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from urllib.parse import quote

import mlflow
import pytest
from builders import write_csv
from click.testing import CliRunner
from mlflow import MlflowClient
from mlflow_ui import close_assistant, new_page, pick
from test_browser import EXPLAINED, TRAIN, screenshot

from mlflow_explain import artifacts, ui_view
from mlflow_explain.cli import cli
from mlflow_explain.render.strip import CONTENT_HEIGHT
from mlflow_explain.sampling import sentence_key

pytestmark = pytest.mark.slow

SENTENCES_TABLE = f"{artifacts.ARTIFACT_DIR}/{artifacts.SENTENCES_FILE}"


@dataclass
class Runs:
    url: str
    experiment_id: str
    seed_1: str
    seed_2: str
    callback: str
    tables: dict[str, object]
    """Run ID -> its per-sentence table as ``mlflow.load_table`` returns it."""
    view_url: str


@pytest.fixture(scope="module")
def runs(mlflow_server, tmp_path_factory) -> Runs:
    folder = tmp_path_factory.mktemp("ui")
    train = write_csv(folder / "train.csv", [{"text": t, "label": lab} for lab, ts in TRAIN.items() for t in ts])
    evaluation = write_csv(folder / "eval.csv", [{"text": t, "label": lab} for t, lab in EXPLAINED.items()])
    common = ["main", "--data", str(train), "--eval-data", str(evaluation), "--n-explain", "3", "--n-steps", "4"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
        mlflow.set_tracking_uri(mlflow_server.url)
        experiment_id = MlflowClient().create_experiment(f"ui-{uuid.uuid4().hex[:8]}")
        mlflow.set_experiment(experiment_id=experiment_id)
        ids, output = [], ""
        for extra in (["--seed", "1"], ["--seed", "2"], ["--seed", "1", "--explain-every", "1"]):
            result = CliRunner().invoke(cli, [*common, "--epochs", "2", *extra], catch_exceptions=False)
            assert result.exit_code == 0, result.output
            output = result.output
            ids.append(re.search(r"^run ([0-9a-f]{32}):", result.output, re.M)[1])
        tables = {run_id: mlflow.load_table(SENTENCES_TABLE, run_ids=[run_id]) for run_id in ids}
        mlflow.set_tracking_uri(None)
    view_url = re.search(r"explanations in the MLflow UI: (\S+)", output)[1]
    return Runs(mlflow_server.url, experiment_id, *ids, tables=tables, view_url=view_url)


def runs_page(page, runs: Runs, mode: str, extra: str = "") -> None:
    page.goto(
        f"{runs.url}/#/experiments/{runs.experiment_id}/runs?workflowType=machine_learning&compareRunsMode={mode}{extra}"
    )
    page.get_by_text("matching runs").first.wait_for()
    close_assistant(page)


def test_artifact_view_lines_up_every_run_on_the_same_sentence(runs, browser, tmp_path):
    # Every sentence is in every run's table, with the same key.
    texts = [set(table.text) for table in runs.tables.values()]
    assert texts[0] == texts[1] == texts[2] == set(EXPLAINED)
    for table in runs.tables.values():
        assert table.key.tolist() == [sentence_key(t) for t in table.text]

    page, blocked = new_page(browser, runs.url)
    runs_page(page, runs, "ARTIFACT")
    tables = page.locator("[data-testid=dropdown-tables]")
    tables.click()
    offered = page.get_by_role("option").all_inner_texts()
    page.keyboard.press("Escape")
    assert SENTENCES_TABLE in offered
    pick(page, tables, SENTENCES_TABLE, deselect=tuple(t for t in offered if t != SENTENCES_TABLE))
    pick(page, page.get_by_role("combobox", name='Select "group by" columns'), "text", deselect=("key",))
    compare = page.get_by_role("combobox", name=re.compile(r"^Dialog Combobox, selected option"))
    pick(page, compare, "top_words")
    sentence = "日本代表の選手が試合で勝った"
    for table in runs.tables.values():  # each run's own top words, shown on the sentence's row
        words = table[table.text == sentence].top_words.item()
        assert words and " · " in words
        page.get_by_text(words, exact=True).first.wait_for()
    row = page.get_by_role("row").filter(has_text=sentence)
    assert row.get_by_text(re.compile(r"[+-]\d\.\d\d")).count() == 3  # one cell per run
    screenshot(page, "ui-artifact-view-top-words.png", tmp_path)

    pick(page, compare, artifacts.SENTENCE_IMAGE_COLUMN)
    images = page.locator("img[src*=table_images]")
    images.first.wait_for()
    page.wait_for_function(
        "() => { const i = [...document.querySelectorAll('img[src*=table_images]')];"
        " return i.length >= 9 && i.every(x => x.complete && x.naturalWidth > 0); }"
    )
    # The strip is shown unscaled and the part that holds its content is not clipped by the cell.
    for box in images.evaluate_all(
        """els => els.map(e => { const r = e.getBoundingClientRect(); let n = e.parentElement;
             while (n && !['hidden', 'clip'].includes(getComputedStyle(n).overflowY)) n = n.parentElement;
             const c = n.getBoundingClientRect();
             return [e.naturalWidth, Math.round(r.width), Math.round(r.top - c.top),
                     Math.round(c.bottom - r.top)]; })"""
    ):
        natural, shown, top, visible = box
        assert natural == shown == 256, box
        assert top >= 0 and visible >= CONTENT_HEIGHT, box
    screenshot(page, "ui-artifact-view-images.png", tmp_path)
    assert blocked == []
    page.context.close()


def test_the_same_image_key_names_the_same_sentence_in_every_run(runs, browser, tmp_path):
    keys = {}
    for run_id in (runs.seed_1, runs.seed_2):
        paths = [a.path for a in MlflowClient(runs.url).list_artifacts(run_id, "images")]
        keys[run_id] = {re.sub(r"\+step\+.*", "", p.removeprefix("images/")).replace("~", "/") for p in paths}
        table = runs.tables[run_id]
        expected = {f"explanations/sentence_{i:02d}_{k}" for i, k in zip(table.sentence_id, table.key, strict=True)}
        assert expected <= keys[run_id]
    assert keys[runs.seed_1] == keys[runs.seed_2]

    page, _ = new_page(browser, runs.url)
    runs_page(page, runs, "CHART")
    first = runs.tables[runs.seed_1].sort_values("sentence_id").iloc[0]
    key = f"explanations/sentence_00_{first.key}"
    card = (
        page.locator("[data-testid=experiment-view-compare-runs-card]")
        .filter(has=page.locator("h4", has_text=key))
        .first
    )
    card.wait_for()
    card.scroll_into_view_if_needed()
    # one card, both runs' pictures of that sentence (the card loads them after it appears)
    page.wait_for_function(
        """([card, ids]) => { const sources = [...card.querySelectorAll('img')].map(i => i.getAttribute('src') || '');
             return ids.every(id => sources.some(s => s.includes(id))); }""",
        arg=[card.element_handle(), [runs.seed_1, runs.seed_2]],
    )
    screenshot(page, "ui-chart-view-default.png", tmp_path)
    page.context.close()


def test_prepared_chart_view_shows_every_picture_when_it_opens(runs, browser, tmp_path):
    assert runs.view_url == runs.url + ui_view.view_path(runs.experiment_id)  # the link `main` printed
    tags = MlflowClient(runs.url).get_experiment(runs.experiment_id).tags
    keys = ui_view.image_keys_of(tags[ui_view.TAG])
    assert {k.rsplit("/", 1)[0] for k in keys} == {"explanations", "explanations/training"}

    page, blocked = new_page(browser, runs.url, height=1400)
    page.goto(runs.view_url)
    page.get_by_text("matching runs").first.wait_for()
    close_assistant(page)
    page.get_by_text("You're viewing a shared view").wait_for()
    cards = page.locator("[data-testid=experiment-view-compare-runs-card]")
    training = cards.filter(has=page.locator("h4", has_text="explanations/training/sentence_00_")).first
    training.scroll_into_view_if_needed()
    page.wait_for_function(
        "c => { const i = [...c.querySelectorAll('img')]; return i.length > 0 && i.every(x => x.complete); }",
        arg=training.element_handle(),
    )
    slider = training.get_by_role("slider")
    assert slider.get_attribute("aria-valuenow") == "0"  # the step-0 baseline, before training
    picture = training.locator("img").first
    assert runs.callback in picture.get_attribute("src")
    card_box, picture_box = training.bounding_box(), picture.bounding_box()
    assert picture_box["height"] > 50 and picture_box["y"] + 100 <= card_box["y"] + card_box["height"]
    assert training.get_by_text(re.compile(r"n_explain=\d")).count() == 0  # no parameter list in front of it
    screenshot(page, "ui-prepared-chart-view.png", tmp_path)
    assert blocked == []
    page.context.close()


def test_compare_page_shows_the_runs_summaries_side_by_side(runs, browser, tmp_path):
    page, _ = new_page(browser, runs.url)
    ids = quote(json.dumps([runs.seed_1, runs.seed_2]))
    page.goto(f"{runs.url}/#/compare-runs?runs={ids}&experiments={quote(json.dumps([runs.experiment_id]))}")
    page.get_by_text(re.compile(r"Comparing 2 Runs")).wait_for()
    close_assistant(page)
    page.get_by_role("button", name="Artifacts", exact=True).scroll_into_view_if_needed()
    nodes = page.locator("[data-testid=artifact-tree-node]")
    nodes.first.wait_for()
    listed = {node.get_attribute("aria-label") for node in nodes.all()}
    assert {artifacts.SUMMARY_IMAGE, artifacts.HTML_FILE} <= listed
    nodes.filter(has_text=artifacts.SUMMARY_IMAGE).first.click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('img[src^=\"blob:\"]')]"
        ".filter(i => i.complete && i.naturalWidth > 0 && i.getBoundingClientRect().width > 0).length >= 2"
    )
    boxes = page.locator('img[src^="blob:"]').evaluate_all(
        "els => els.filter(e => e.getBoundingClientRect().width > 0)"
        ".map(e => { const r = e.getBoundingClientRect(); return [Math.round(r.x), Math.round(r.y)]; })"
    )
    assert len(boxes) == 2 and boxes[0][1] == boxes[1][1] and boxes[0][0] != boxes[1][0]  # side by side
    page.get_by_role("button", name="Artifacts", exact=True).scroll_into_view_if_needed()
    screenshot(page, "ui-compare-page-artifacts.png", tmp_path)
    page.context.close()
