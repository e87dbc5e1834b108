"""How long the MLflow UI's artifact-evaluation view takes to show a logged table, in headless Chromium.

Used by ``bench_step_logging.py``; only the tracking server on 127.0.0.1 is reached (anything else is aborted).
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from mlflow_ui import new_page, pick

CHROMIUM = "/usr/bin/chromium"
JAPANESE = re.compile("[\u3040-\u30ff\u4e00-\u9fff]")


def time_artifact_view(url: str, experiment_id: str, run_ids: list[str], table: str, repeats: int = 3) -> list[float]:
    """Seconds from opening the runs page's artifact-evaluation view to the first row of ``table``, grouped by text.

    Each repeat uses a fresh browser context (no cache) and includes choosing the table and the grouping
    (the view does not keep them), as a user does.

    Args:
        url: The tracking server (``http://127.0.0.1:<port>``).
        experiment_id: The experiment of the runs.
        run_ids: The runs (only for the caller's report; the view shows the experiment's runs).
        table: The table's artifact path, e.g. ``explanations/sentences.json``.
        repeats: Page loads to time. Defaults to 3.

    Returns:
        One figure per repeat.
    """
    from playwright.sync_api import sync_playwright

    seconds = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            for _ in range(repeats):
                page, _ = new_page(browser, url)
                started = time.perf_counter()
                page.goto(
                    f"{url}/#/experiments/{experiment_id}/runs?workflowType=machine_learning&compareRunsMode=ARTIFACT"
                )
                tables = page.locator("[data-testid=dropdown-tables]")
                tables.click()
                offered = page.get_by_role("option").all_inner_texts()
                page.keyboard.press("Escape")
                pick(page, tables, table, deselect=tuple(t for t in offered if t != table))
                groups = page.get_by_role("combobox", name='Select "group by" columns')
                pick(page, groups, "text", deselect=("key", "step"))
                page.get_by_text(JAPANESE).first.wait_for(state="visible")
                seconds.append(time.perf_counter() - started)
                page.context.close()
        finally:
            browser.close()
    return seconds
