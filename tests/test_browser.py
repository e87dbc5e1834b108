"""The logged HTML page in headless Chromium: from the server's artifact endpoint and inside the MLflow UI.

The browser is Debian's ``chromium`` driven by Playwright (``.ci/run`` installs both); when it cannot
start, these tests fail rather than skip. Screenshots go to ``test-artifacts/`` at the repository root.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import pytest
from builders import write_csv
from click.testing import CliRunner
from mlflow import MlflowClient

from mlflow_explain import artifacts
from mlflow_explain.cli import cli

pytestmark = pytest.mark.slow

SCREENSHOTS = Path(__file__).resolve().parents[1] / "test-artifacts"

XSS = '<script>alert("xss")</script><img src=x onerror=alert(1)> 東京'
TRAIN = {
    "スポーツ": [
        "日本代表が試合に勝利した",
        "東京で野球の試合が行われた",
        "サッカー日本代表の監督が決まった",
        "大阪の選手が優勝した",
        "テニスの大会で日本人が勝った",
        "東京の野球チームが連勝した",
    ],
    "天気": [
        "東京で大雨の予報が出た",
        "大阪は明日晴れる見込み",
        "台風が日本に近づいている",
        "北海道で大雪が降った",
        "週末は全国的に雨の予報",
        XSS,  # in training too, so that every character of it is in the vocabulary, not [UNK]
    ],
}
EXPLAINED = {"日本代表の選手が試合で勝った": "スポーツ", "東京は明日雨が降る予報": "天気", XSS: "天気"}
"""The evaluation file: every sentence of it is explained."""

EVIL_PAGE = '<!DOCTYPE html><html><head><meta charset="utf-8"></head><body><p>対照</p>' + XSS[:-3] + "</body></html>"
"""A page that does run the hostile markup: the control that shows the checks can fail."""


@dataclass
class LoggedRun:
    url: str
    experiment_id: str
    run_id: str
    control_run_id: str
    tokens: dict[str, list[str]]
    """Text of each explained sentence -> its tokens, as the logged attribution table has them."""


@pytest.fixture(scope="module")
def logged_run(mlflow_server, tmp_path_factory) -> Iterator[LoggedRun]:
    """Train and explain the Japanese and hostile sentences with ``main`` over HTTP; log the control page."""
    folder = tmp_path_factory.mktemp("browser")
    train = write_csv(folder / "train.csv", [{"text": t, "label": lab} for lab, ts in TRAIN.items() for t in ts])
    evaluation = write_csv(folder / "eval.csv", [{"text": t, "label": lab} for t, lab in EXPLAINED.items()])
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
        mlflow.set_tracking_uri(mlflow_server.url)
        experiment_id = MlflowClient().create_experiment(f"browser-{uuid.uuid4().hex[:8]}")
        mlflow.set_experiment(experiment_id=experiment_id)
        options = ["--eval-data", str(evaluation), "--epochs", "1", "--n-explain", str(len(EXPLAINED))]
        result = CliRunner().invoke(
            cli, ["main", "--data", str(train), *options, "--n-steps", "4"], catch_exceptions=False
        )
        assert result.exit_code == 0, result.output
        (run,) = MlflowClient().search_runs([experiment_id])
        table = mlflow.load_table(f"{artifacts.ARTIFACT_DIR}/{artifacts.TABLE_FILE}", run_ids=[run.info.run_id])
        with mlflow.start_run() as control:
            mlflow.log_text(EVIL_PAGE, f"{artifacts.ARTIFACT_DIR}/{artifacts.HTML_FILE}")
        mlflow.set_tracking_uri(None)
    first_label = table[table.attributed_label == table.attributed_label.iloc[0]]
    tokens = {text: rows.sort_values("position").token.tolist() for text, rows in first_label.groupby("text")}
    yield LoggedRun(mlflow_server.url, experiment_id, run.info.run_id, control.info.run_id, tokens)


@dataclass
class Watch:
    """What a page did besides showing the HTML: dialogs, console errors, script errors, requests."""

    dialogs: list[str] = field(default_factory=list)
    console_errors: list[tuple[str, str]] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)


def open_page(browser, server_url: str):
    """A page that may reach the test server only, and a :class:`Watch` of what it does.

    The artifact endpoint sends ``Content-Disposition: attachment`` (a browser downloads the file);
    that header alone is dropped so that the page shows the bytes and Content-Type the server sent.
    """
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="ja-JP")

    def route(route):
        request = route.request
        if not request.url.startswith(server_url):
            route.abort()
        elif request.resource_type == "document" and "/get-artifact?" in request.url:
            response = route.fetch()
            headers = {k: v for k, v in response.headers.items() if k.lower() != "content-disposition"}
            route.fulfill(response=response, headers=headers)
        else:
            route.continue_()

    context.route("**/*", route)
    page = context.new_page()
    watch = Watch()
    page.on("dialog", lambda dialog: (watch.dialogs.append(dialog.message), dialog.dismiss()))
    page.on("pageerror", lambda error: watch.page_errors.append(str(error)))
    page.on(
        "console",
        lambda message: (
            watch.console_errors.append((message.location.get("url", ""), message.text))
            if message.type == "error"
            else None
        ),
    )
    page.on("request", lambda request: watch.requests.append((request.frame.url, request.url)))
    return page, watch


def artifact_url(run: LoggedRun, run_id: str) -> str:
    return f"{run.url}/get-artifact?path={artifacts.ARTIFACT_DIR}/{artifacts.HTML_FILE}&run_uuid={run_id}"


def ui_url(run: LoggedRun, run_id: str) -> str:
    path = f"{artifacts.ARTIFACT_DIR}/{artifacts.HTML_FILE}"
    return f"{run.url}/#/experiments/{run.experiment_id}/runs/{run_id}/artifacts/{path}"


def assert_shows_the_sentences(document, run: LoggedRun) -> None:
    """Each explained sentence shows as the data set has it, with the logged tokens, and nothing ran."""
    sentences = document.locator("tbody.sentence")
    assert sentences.count() == len(EXPLAINED)
    shown = {}
    for i in range(sentences.count()):
        sentence = sentences.nth(i)
        text = sentence.locator("tr.sentence-header .text").inner_text()
        rows = sentence.locator("tr.attribution")
        assert rows.count() == 2  # both labels are attributed
        shown[text] = [rows.nth(j).locator("mark.tok").all_inner_texts() for j in range(rows.count())]
    assert set(shown) == set(EXPLAINED)  # the characters of the data set, Japanese and markup alike
    for text, rows in shown.items():
        assert all(tokens == run.tokens[text] for tokens in rows), text
        words = [t.removeprefix("##") for t in rows[0] if t not in ("[CLS]", "[SEP]")]
        assert "[UNK]" not in words and "".join(words) == re.sub(r"\s", "", text)
    assert document.locator("script, img, iframe").count() == 0  # the markup stayed text


def screenshot(page, name: str, tmp_path: Path) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    for folder in (SCREENSHOTS, tmp_path):
        page.screenshot(path=folder / name, full_page=True)


def test_html_from_the_artifact_endpoint(logged_run, browser, tmp_path):
    page, watch = open_page(browser, logged_run.url)
    response = page.goto(artifact_url(logged_run, logged_run.run_id))
    assert response.ok and response.headers["content-type"].startswith("text/html")
    page.wait_for_timeout(500)  # an injected onerror handler would have fired by now
    assert_shows_the_sentences(page, logged_run)
    screenshot(page, "html-artifact-endpoint.png", tmp_path)
    assert watch.dialogs == [] and watch.page_errors == [] and watch.console_errors == []
    assert [url for _, url in watch.requests] == [artifact_url(logged_run, logged_run.run_id)]
    page.context.close()

    # Control: the same checks catch a page that runs the markup.
    page, watch = open_page(browser, logged_run.url)
    page.goto(artifact_url(logged_run, logged_run.control_run_id))
    page.wait_for_timeout(500)
    assert watch.dialogs == ["xss", "1"] and watch.console_errors  # the <img src=x> request failed
    page.context.close()


def test_html_in_the_mlflow_ui_run_page(logged_run, browser, tmp_path):
    page, watch = open_page(browser, logged_run.url)
    page.goto(ui_url(logged_run, logged_run.run_id))
    frame = page.frame_locator("iframe.mlflow-html-iframe")
    frame.locator("tbody.sentence").first.wait_for(timeout=60_000)
    page.wait_for_timeout(500)
    assert_shows_the_sentences(frame, logged_run)
    screenshot(page, "html-artifact-mlflow-ui.png", tmp_path)
    (html_frame,) = [f for f in page.frames if f.url.startswith("blob:")]  # the UI shows artifacts in a blob iframe
    assert watch.dialogs == [] and watch.page_errors == []
    assert [e for e in watch.console_errors if e[0] == html_frame.url] == []
    assert [url for frame_url, url in watch.requests if frame_url == html_frame.url] == []
    page.context.close()

    # Control: in the UI's sandboxed iframe a script cannot open a dialog, but its blocked call shows.
    page, watch = open_page(browser, logged_run.url)
    page.goto(ui_url(logged_run, logged_run.control_run_id))
    page.frame_locator("iframe.mlflow-html-iframe").locator("p").wait_for(timeout=60_000)
    page.wait_for_timeout(500)
    (control_frame,) = [f for f in page.frames if f.url.startswith("blob:")]
    assert any(url == control_frame.url and "alert()" in text for url, text in watch.console_errors)
    page.context.close()
