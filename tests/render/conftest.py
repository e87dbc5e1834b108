"""Hand-built explanations for the renderer tests: Japanese text, WordPiece pieces, hostile strings."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from mlflow_explain.explanation import Explanation, LabelAttribution, TokenScore, word_indices

SPECIAL = frozenset({"[CLS]", "[SEP]"})
HOSTILE_LABEL = "<img src=x onerror=alert(1)>"
HOSTILE_TEXT = '<script>alert("x")</script> & "quotes"'


def make_attribution(
    label: str, probability: float, tokens: Sequence[str], scores: Sequence[float], delta: float | None = None
) -> LabelAttribution:
    """A label attribution with word indices assigned the way the engine assigns them."""
    special = [t in SPECIAL for t in tokens]
    indices = word_indices(tokens, special)
    return LabelAttribution(
        label=label,
        probability=probability,
        tokens=tuple(
            TokenScore(position=i, token=t, score=s, word_index=w, is_special=sp)
            for i, (t, s, w, sp) in enumerate(zip(tokens, scores, indices, special, strict=True))
        ),
        convergence_delta=delta,
    )


@pytest.fixture
def make_explanation() -> Callable[..., Explanation]:
    """Factory for one explanation whose labels all share the same tokens."""

    def make(
        tokens: Sequence[str],
        scores: dict[str, Sequence[float]],
        *,
        sentence_id: int = 0,
        text: str | None = None,
        true_label: str | None = "dokujo-tsushin",
        predicted_label: str = "dokujo-tsushin",
        probabilities: dict[str, float] | None = None,
        truncated: bool = False,
        n_tokens: int | None = None,
    ) -> Explanation:
        probabilities = probabilities or {}
        return Explanation(
            sentence_id=sentence_id,
            text=text if text is not None else "".join(t.removeprefix("##") for t in tokens if t not in SPECIAL),
            true_label=true_label,
            predicted_label=predicted_label,
            predicted_probability=probabilities.get(predicted_label, 0.9),
            attributions=tuple(
                make_attribution(label, probabilities.get(label, 0.05), tokens, s) for label, s in scores.items()
            ),
            truncated=truncated,
            n_tokens=n_tokens if n_tokens is not None else len(tokens),
            method="integrated_gradients",
        )

    return make


@pytest.fixture
def one_per_class(make_explanation: Callable[..., Explanation]) -> Callable[[int], list[Explanation]]:
    """Factory for ``n`` sentences, each predicted as its own class ``class-<i>`` (scores 0.1 and 0.2)."""

    def make(n_classes: int) -> list[Explanation]:
        return [
            make_explanation(
                ["[CLS]", "記事", f"分類{c}", "[SEP]"],
                {f"class-{c}": [0.0, 0.1, 0.2, 0.0]},
                sentence_id=c,
                predicted_label=f"class-{c}",
            )
            for c in range(n_classes)
        ]

    return make


@pytest.fixture
def explanations(make_explanation: Callable[..., Explanation]) -> tuple[Explanation, ...]:
    """Four sentences: correct, correct with ## pieces, hostile + misclassified, truncated + no true label."""
    return (
        make_explanation(
            ["[CLS]", "もう", "プロ", "##ポーズ", "を", "待た", "ない", "女", "たち", "[SEP]"],
            {
                "dokujo-tsushin": [0.0, 0.10, 0.40, 0.20, -0.05, 0.15, -0.10, 0.50, 0.05, 0.0],
                "sports-watch": [0.0, -0.10, -0.30, -0.10, 0.02, -0.05, 0.05, -0.40, -0.02, 0.0],
            },
            sentence_id=0,
            text="もうプロポーズを待たない女たち",
            probabilities={"dokujo-tsushin": 0.91, "sports-watch": 0.03},
        ),
        make_explanation(
            ["[CLS]", "日本", "代表", "が", "ワールド", "##カップ", "で", "勝利", "[SEP]"],
            {
                "sports-watch": [0.0, 0.20, 0.30, 0.01, 0.60, 0.25, -0.02, 0.35, 0.0],
                "dokujo-tsushin": [0.0, -0.10, -0.20, 0.0, -0.30, -0.10, 0.01, -0.20, 0.0],
            },
            sentence_id=1,
            text="日本代表がワールドカップで勝利",
            true_label="sports-watch",
            predicted_label="sports-watch",
            probabilities={"sports-watch": 0.93, "dokujo-tsushin": 0.02},
        ),
        make_explanation(
            ["[CLS]", "<", "script", ">", "alert", "&", '"', "quotes", "[SEP]"],
            {
                "sports-watch": [0.0, 0.10, -0.20, 0.05, 0.30, -0.70, 0.02, 0.10, 0.0],
                HOSTILE_LABEL: [0.0, -0.10, 0.20, -0.05, -0.30, 0.70, -0.02, -0.10, 0.0],
            },
            sentence_id=2,
            text=HOSTILE_TEXT,
            true_label=HOSTILE_LABEL,
            predicted_label="sports-watch",
            probabilities={"sports-watch": 0.55, HOSTILE_LABEL: 0.40},
        ),
        make_explanation(
            ["[CLS]", "長い", "記事", "の", "本文", "です", "[SEP]"],
            {"dokujo-tsushin": [0.0, 0.30, -0.20, 0.01, 0.25, 0.02, 0.0]},
            sentence_id=3,
            text="長い記事の本文です。" * 80,
            true_label=None,
            predicted_label="dokujo-tsushin",
            probabilities={"dokujo-tsushin": 0.61},
            truncated=True,
            n_tokens=600,
        ),
    )
