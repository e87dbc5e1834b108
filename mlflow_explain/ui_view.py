"""A prepared view of the MLflow UI's chart view: one card per explained sentence, pictures first.

The runs page's chart view shows each image series as a card, but by default a card lists every
parameter of every run above its picture, which pushes the picture out of the card. The MLflow UI
can open a *shared view*: a state stored as the experiment tag ``mlflow.sharedViewState.<key>`` and
opened with ``?viewStateShareKey=<key>`` (what its "Share" button writes). :func:`view_state` builds
such a state for the sentences' image series, with the run parameters hidden, grouped in the
sections ``explanations`` (after training) and ``explanations/training`` (the Trainer callback's
steps); :mod:`mlflow_explain.tracking` stores it. Everything here is pure.

The state's format is the UI's own (checked against MLflow 3.17 by the browser tests): a list of
chart cards (``compareRunCharts``) and of sections (``compareRunSections``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable

__all__ = ["MAX_CARDS", "SHARE_KEY", "TAG", "image_keys_of", "view_path", "view_state"]

SHARE_KEY = "mlflow-explain"
"""Name of the shared view (``?viewStateShareKey=mlflow-explain``)."""

TAG = f"mlflow.sharedViewState.{SHARE_KEY}"
"""Experiment tag that holds the view's state."""

MAX_CARDS = 60
"""Most cards in the view (an experiment tag holds at most 20,000 characters; a card takes about 250)."""

_NAMESPACE = uuid.UUID("5f0d1c3e-8a57-4c1b-9a53-6d2a7e0f4b19")


def view_state(image_keys: Iterable[str]) -> str:
    """The UI state of a chart view with one picture card per image key, run parameters hidden.

    Args:
        image_keys: Image series keys, e.g. ``explanations/sentence_00_553bd9fe``; their folder
            (``explanations``, ``explanations/training``) names the card's section. At most
            :data:`MAX_CARDS`, in sorted order, are kept.

    Returns:
        The state as compact JSON, for the :data:`TAG` experiment tag.

    Example:
        >>> json.loads(view_state(["explanations/sentence_00_553bd9fe"]))["compareRunCharts"][0]["showRunParams"]
        False
    """
    keys = sorted(set(image_keys))[:MAX_CARDS]
    sections = {key.rsplit("/", 1)[0]: _uuid(f"section:{key.rsplit('/', 1)[0]}") for key in keys}
    charts = [
        {
            "uuid": _uuid(f"card:{key}"),
            "type": "IMAGE",
            "runsCountToCompare": 10,
            "metricSectionId": sections[key.rsplit("/", 1)[0]],
            "deleted": False,
            "isGenerated": True,
            "imageKeys": [key],
            "step": 0,
            "showRunParams": False,
        }
        for key in keys
    ]
    state = {
        "compareRunCharts": charts,
        "compareRunSections": [
            {"uuid": u, "name": name, "display": True, "isReordered": False, "deleted": False, "isGenerated": True}
            for name, u in sorted(sections.items())
        ],
        "isAccordionReordered": False,
    }
    return json.dumps(state, separators=(",", ":"))


def image_keys_of(state: str | None) -> list[str]:
    """The image keys of a state that :func:`view_state` wrote (none for a missing or foreign state)."""
    try:
        charts = json.loads(state or "{}").get("compareRunCharts", [])
    except (json.JSONDecodeError, AttributeError):
        return []
    return [key for chart in charts if isinstance(chart, dict) for key in chart.get("imageKeys", [])]


def view_path(experiment_id: str) -> str:
    """The UI route (after the server's address) that opens the view for an experiment."""
    return (
        f"/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
        f"&compareRunsMode=CHART&viewStateShareKey={SHARE_KEY}"
    )


def _uuid(name: str) -> str:
    """A stable id, so that updating the view keeps the cards the user already has."""
    return str(uuid.uuid5(_NAMESPACE, name))
