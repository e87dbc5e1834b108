"""The prepared chart view's state: what the MLflow UI reads from the experiment tag (the browser tests open it)."""

from __future__ import annotations

import json

from mlflow_explain import ui_view

KEYS = [
    "explanations/sentence_01_d36fd0e9",
    "explanations/sentence_00_553bd9fe",
    "explanations/training/sentence_00_553bd9fe",
]


def test_one_picture_card_per_key_in_its_folders_section_without_run_parameters():
    state = json.loads(ui_view.view_state(KEYS))
    charts, sections = state["compareRunCharts"], state["compareRunSections"]
    assert [c["imageKeys"] for c in charts] == [[k] for k in sorted(KEYS)]
    assert {c["type"] for c in charts} == {"IMAGE"} and not any(c["showRunParams"] for c in charts)
    assert all(c["step"] == 0 and not c["deleted"] for c in charts)
    by_uuid = {s["uuid"]: s["name"] for s in sections}
    assert sorted(by_uuid.values()) == ["explanations", "explanations/training"]
    assert [by_uuid[c["metricSectionId"]] for c in charts] == ["explanations", "explanations", "explanations/training"]
    assert len({c["uuid"] for c in charts}) == 3


def test_updates_keep_the_keys_and_ids_already_in_the_view():
    first = ui_view.view_state(KEYS[:1])
    merged = ui_view.view_state([*ui_view.image_keys_of(first), *KEYS[1:]])
    assert ui_view.image_keys_of(merged) == sorted(KEYS)
    uuid_before = json.loads(first)["compareRunCharts"][0]["uuid"]
    assert uuid_before in {c["uuid"] for c in json.loads(merged)["compareRunCharts"]}
    assert ui_view.image_keys_of(None) == [] and ui_view.image_keys_of("not json") == []
    assert ui_view.image_keys_of('{"compareRunCharts": [{"type": "BAR"}]}') == []


def test_the_state_fits_an_experiment_tag():
    keys = [f"explanations/sentence_{i:02d}_{i:08x}" for i in range(500)]
    state = ui_view.view_state(keys)
    assert len(json.loads(state)["compareRunCharts"]) == ui_view.MAX_CARDS
    assert len(state) < 20_000  # MLflow's limit for an experiment tag value


def test_the_view_path_opens_the_chart_view_with_the_share_key():
    path = ui_view.view_path("7")
    assert path.startswith("/#/experiments/7/runs?")
    assert "compareRunsMode=CHART" in path and f"viewStateShareKey={ui_view.SHARE_KEY}" in path
