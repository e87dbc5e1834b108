"""Multi-label classification: BCE training, evaluation at the threshold, explanations towards label sets and
the pages, tables and pictures that show them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from builders import english_rows, multi_label_rows, save_tiny_english_model, write_csv, write_label_sets

from mlflow_explain.config import DataConfig, ExplainConfig, TrainConfig
from mlflow_explain.data import Example, join_labels, load_dataset
from mlflow_explain.errors import ModelError
from mlflow_explain.explainer import explain_examples, select_targets
from mlflow_explain.explanation import Explanation, LabelAttribution, TokenScore, summary_metrics
from mlflow_explain.modeling import (
    MULTI_LABEL,
    align_labels,
    build_embedded_model,
    encode_texts,
    evaluate,
    load_pretrained,
    predict_proba,
    train,
)
from mlflow_explain.pipeline import explain_sample
from mlflow_explain.render.html import render_html
from mlflow_explain.render.strip import header_parts, token_strip
from mlflow_explain.render.table import attribution_table, sentence_table

TOPICS = ("cooking", "football", "space")


@pytest.fixture(scope="module")
def tags(tmp_path_factory):
    """The small multi-label data set, as a CSV of '|'-separated label sets, loaded."""
    path = write_label_sets(tmp_path_factory.mktemp("tags") / "tags.csv", multi_label_rows(per_set=8))
    return load_dataset(DataConfig(data=str(path)))


# --- training and evaluation ---------------------------------------------------------------------


def test_the_embedded_model_gets_a_multi_label_head_for_label_sets(tags, tmp_path):
    model, _ = build_embedded_model(tags, TrainConfig(max_length=32), tmp_path)
    assert model.config.problem_type == MULTI_LABEL and model.config.num_labels == 3
    single = load_dataset(DataConfig(data=str(write_csv(tmp_path / "news.csv", english_rows()))))
    model, _ = build_embedded_model(single, TrainConfig(max_length=32), tmp_path / "single")
    assert model.config.problem_type is None  # transformers' cross-entropy, as before


def test_training_minimises_binary_cross_entropy_on_the_label_sets(tags, tmp_path):
    """One epoch; the Trainer's last evaluation loss is BCE of the logits against each text's 0/1 label targets."""
    config = TrainConfig(epochs=1, max_length=32)
    model, tokenizer = build_embedded_model(tags, config, tmp_path)
    result = train(model, tokenizer, tags, config, tmp_path / "trainer")

    encoded = encode_texts(tokenizer, [e.text for e in tags.eval], 32)
    probabilities = torch.tensor(predict_proba(model, tokenizer, encoded), dtype=torch.float64)
    targets = torch.tensor([[float(label in e.labels) for label in TOPICS] for e in tags.eval], dtype=torch.float64)
    bce = torch.nn.functional.binary_cross_entropy(probabilities, targets).item()
    (last,) = [h for h in result.history if "eval_loss" in h][-1:]
    assert last["eval_loss"] == pytest.approx(bce, abs=1e-4)
    assert model.config.problem_type == MULTI_LABEL
    assert {"micro_f1", "macro_f1", "subset_accuracy", "f1_space", "precision_cooking"} <= set(result.metrics)


def test_evaluation_decides_at_the_threshold(tags, tmp_path):
    model, tokenizer = load_pretrained(
        str(save_tiny_english_model(tmp_path / "m", problem_type=MULTI_LABEL)), list(TOPICS), multi_label=True
    )
    probabilities = predict_proba(model, tokenizer, encode_texts(tokenizer, [e.text for e in tags.eval], 32))
    low, high = float(probabilities.min()) - 1e-3, float(probabilities.max()) + 1e-3
    everything = evaluate(model, tokenizer, tags, 32, threshold=low)  # every label predicted for every text
    mean_size = np.mean([len(e.labels) for e in tags.eval])
    assert everything["micro_f1"] == pytest.approx(2 * mean_size / (mean_size + 3))  # recall 1, precision size/3
    assert everything["subset_accuracy"] == 0.0 and everything["recall_space"] == 1.0
    top_only = evaluate(model, tokenizer, tags, 32, threshold=high)  # the most probable label of each text
    top = probabilities.argmax(axis=1)
    assert top_only["subset_accuracy"] == pytest.approx(
        np.mean([e.labels == (TOPICS[t],) for e, t in zip(tags.eval, top, strict=True)])
    )


def test_fine_tuning_sets_the_problem_type_from_the_data(tmp_path):
    folder = save_tiny_english_model(tmp_path / "m")
    multi, _ = load_pretrained(str(folder), list(TOPICS), multi_label=True)
    assert multi.config.problem_type == MULTI_LABEL
    saved_multi = save_tiny_english_model(tmp_path / "ml", problem_type=MULTI_LABEL)
    single, _ = load_pretrained(str(saved_multi), list(TOPICS))  # one label per text: a softmax head again
    assert single.config.problem_type is None


def test_label_sets_need_a_multi_label_model(tmp_path):
    single, _ = load_pretrained(str(save_tiny_english_model(tmp_path / "m")))
    with pytest.raises(ModelError, match=r"the data holds label sets \(multi-label\) but the model is a single-label"):
        align_labels(single, list(TOPICS), multi_label=True)
    multi, _ = load_pretrained(str(save_tiny_english_model(tmp_path / "ml", problem_type=MULTI_LABEL)))
    align_labels(multi, list(TOPICS), multi_label=True)
    align_labels(multi, list(TOPICS))  # one label per text is a set of one


@pytest.mark.slow
def test_a_tiny_bert_learns_the_label_sets_above_chance(tags, tmp_path):
    config = TrainConfig(epochs=20, max_length=32)
    model, tokenizer = build_embedded_model(tags, config, tmp_path)
    metrics = train(model, tokenizer, tags, config, tmp_path / "trainer").metrics
    # Chance: predicting all three labels gives micro-F1 2 * 1.5 / (1.5 + 3) = 0.67 and no exact match;
    # guessing one of the six label sets matches 1 in 6.
    assert metrics["micro_f1"] > 0.75 and metrics["macro_f1"] > 0.75
    assert metrics["subset_accuracy"] > 0.3


# --- explanations towards label sets --------------------------------------------------------------


@pytest.fixture(scope="module")
def sigmoid_model(tmp_path_factory):
    return load_pretrained(str(save_tiny_english_model(tmp_path_factory.mktemp("ml") / "m", problem_type=MULTI_LABEL)))


TEXT = "rocket soup today"


def probabilities_of(model, tokenizer, text: str) -> np.ndarray:
    (encoded,) = encode_texts(tokenizer, [text], 32)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([encoded.input_ids])).logits[0]
    return torch.sigmoid(logits).numpy()


def explain(model, tokenizer, example, **settings):
    (explanation,) = explain_examples(model, tokenizer, [example], ExplainConfig(n_steps=4, **settings), progress=False)
    return explanation


def between_second_and_third(probabilities: np.ndarray) -> float:
    """A threshold that the two most probable labels pass and the third does not."""
    ordered = np.sort(probabilities)[::-1]
    return float(ordered[1] + ordered[2]) / 2


def test_select_targets_takes_label_sets_and_a_threshold():
    probs = np.array([0.6, 0.9, 0.2])
    assert select_targets("predicted", probs, [2], threshold=0.5) == [1, 0]  # most probable first
    assert select_targets("predicted", probs, [2], threshold=0.95) == [1]  # at least the top one
    assert select_targets("true", probs, [0, 2], threshold=0.5) == [0, 2]
    assert select_targets("true", probs, [], threshold=0.5) == [1, 0]  # no known true label: the prediction
    assert select_targets("predicted+true", probs, [0, 2], threshold=0.5) == [1, 0, 2]
    assert select_targets("all", probs, [0], threshold=0.5) == [0, 1, 2]


def test_predicted_explains_each_label_above_the_threshold_with_its_sigmoid_probability(sigmoid_model):
    model, tokenizer = sigmoid_model
    probabilities = probabilities_of(model, tokenizer, TEXT)
    threshold = between_second_and_third(probabilities)
    top_two = [model.config.id2label[int(i)] for i in np.argsort(-probabilities)[:2]]

    explanation = explain(model, tokenizer, Example.multi(TEXT, ["space"]), target="predicted", threshold=threshold)

    assert explanation.attributed_labels == tuple(top_two)
    assert explanation.predicted_label == "|".join(sorted(top_two)) and explanation.true_label == "space"
    assert [label for label, _ in explanation.predicted_labels] == top_two
    label2id = {v: k for k, v in model.config.id2label.items()}
    for attribution in explanation.attributions:  # sigmoid, not softmax: they need not sum to 1
        assert attribution.probability == pytest.approx(float(probabilities[label2id[attribution.label]]), abs=1e-6)
    assert explanation.predicted_probability == pytest.approx(float(probabilities.max()), abs=1e-6)
    assert explanation.primary.label == top_two[0]


def test_a_threshold_above_every_probability_predicts_the_top_label(sigmoid_model):
    model, tokenizer = sigmoid_model
    explanation = explain(model, tokenizer, Example(TEXT, None), target="predicted", threshold=0.99)
    top = model.config.id2label[int(np.argmax(probabilities_of(model, tokenizer, TEXT)))]
    assert explanation.attributed_labels == (top,) and explanation.predicted_label == top


def test_true_explains_each_true_label_and_predicted_true_adds_the_missing_ones(sigmoid_model):
    model, tokenizer = sigmoid_model
    example = Example.multi(TEXT, ["space", "cooking"])
    assert explain(model, tokenizer, example, target="true").attributed_labels == ("cooking", "space")
    both = explain(model, tokenizer, example, target="predicted+true", threshold=0.99)
    top = both.predicted_labels[0][0]
    assert both.attributed_labels == (top, *(x for x in ("cooking", "space") if x != top))
    unknown = explain(model, tokenizer, Example.multi(TEXT, ["politics"]), target="true", threshold=0.99)
    assert unknown.attributed_labels == (top,)  # a label the model does not know: the prediction


def test_lig_integrates_the_sigmoid_of_each_label_to_the_tolerance(sigmoid_model):
    model, tokenizer = sigmoid_model
    explanation = explain(model, tokenizer, Example.multi(TEXT, ["space"]), target="all")
    assert len(explanation.attributions) == 3
    assert all(a.converged for a in explanation.attributions)  # deltas in sigmoid probability units
    assert sum(a.probability for a in explanation.attributions) != pytest.approx(1.0, abs=1e-3)


def test_quality_scores_the_most_probable_predicted_label(sigmoid_model):
    model, tokenizer = sigmoid_model
    examples = [Example.multi(TEXT, ["space", "cooking"]), Example.multi("the oven goal", ["football"])]
    config = ExplainConfig(n_steps=4, target="predicted", threshold=0.01, randomization=True)
    result = explain_sample(model, tokenizer, examples, config, progress=False)
    assert [q.label for q in result.qualities] == [e.predicted_labels[0][0] for e in result.explanations]
    assert all(len(e.attributions) == 3 for e in result.explanations)  # 0.01: every label is predicted
    assert np.isfinite(result.metrics["quality_comprehensiveness"])
    assert np.isfinite(result.metrics["quality_randomization_spearman"])


def test_the_served_explainer_reads_true_label_sets_and_answers_with_the_predicted_set(sigmoid_model):
    import pandas as pd

    from mlflow_explain.pyfunc import explain_frame

    model, tokenizer = sigmoid_model
    frame = pd.DataFrame({"text": [TEXT, TEXT], "label": ["space|cooking", None]})
    params = {"method": "lig", "n_steps": 4, "level": "token"}
    served = explain_frame(model, tokenizer, frame, {**params, "target": "true"})
    assert served.attributed_labels[0] == ["cooking", "space"]
    assert sorted(served.attributed_labels[1]) == served.predicted_label[1].split("|")  # no label: the prediction
    base = ExplainConfig(threshold=between_second_and_third(probabilities_of(model, tokenizer, TEXT)))
    predicted = explain_frame(model, tokenizer, frame[:1], {**params, "target": "predicted"}, base=base)
    assert predicted.predicted_label[0].count("|") == 1 and len(predicted.attributed_labels[0]) == 2


def test_a_single_label_model_still_predicts_one_label(tmp_path):
    model, tokenizer = load_pretrained(str(save_tiny_english_model(tmp_path / "m")))
    explanation = explain(model, tokenizer, Example(TEXT, "space"), target="predicted", threshold=0.01)
    assert len(explanation.attributed_labels) == 1 and explanation.predicted_labels == ()
    assert "|" not in explanation.predicted_label


# --- pages, tables and pictures show the label sets ------------------------------------------------


def multi_label_explanation(predicted: list[tuple[str, float]], true: list[str]) -> Explanation:
    tokens = ("[CLS]", "rocket", "soup", "[SEP]")
    attributions = tuple(
        LabelAttribution(
            label=label,
            probability=p,
            tokens=tuple(
                TokenScore(i, t, 0.5 if i == 1 else 0.1, -1 if t.startswith("[") else i - 1, t.startswith("["))
                for i, t in enumerate(tokens)
            ),
        )
        for label, p in predicted
    )
    return Explanation(
        sentence_id=0,
        text="rocket soup",
        true_label=join_labels(true),
        predicted_label=join_labels(label for label, _ in predicted),
        predicted_probability=predicted[0][1],
        attributions=attributions,
        predicted_labels=tuple(predicted),
    )


RIGHT = multi_label_explanation([("space", 0.91), ("cooking", 0.73)], ["cooking", "space"])
WRONG = multi_label_explanation([("space", 0.91)], ["cooking", "space"])


def test_the_page_shows_the_true_and_predicted_label_sets():
    page = render_html([RIGHT])
    assert '<td class="label">cooking|space</td>' in page
    assert 'space <span class="prob">(0.91)</span> | cooking <span class="prob">(0.73)</span></td>' in page
    assert "misclassified" not in page.split("</thead>")[1]  # the exact set: right
    wrong = render_html([WRONG])
    assert '<td class="label wrong">space <span class="prob">(0.91)</span></td>' in wrong
    assert '<span class="badge wrong">misclassified</span>' in wrong


def test_the_tables_show_the_label_sets_and_an_exact_match_as_correct():
    sentences = sentence_table([RIGHT, WRONG])
    assert sentences.true_label.tolist() == ["cooking|space"] * 2
    assert sentences.predicted_label.tolist() == ["cooking|space", "space"]
    assert sentences.correct.tolist() == [True, False]
    assert sentences.attributed_label.tolist() == ["space", "space"]  # the most probable predicted label
    rows = attribution_table([RIGHT])
    assert set(rows.attributed_label) == {"space", "cooking"} and set(rows.predicted_label) == {"cooking|space"}
    assert summary_metrics([RIGHT, WRONG])["sample_accuracy"] == 0.5


def test_the_strip_header_shows_the_label_sets():
    assert header_parts(RIGHT, "space", "k") == [
        "k",
        "true cooking|space",
        "predicted space (0.91)|cooking (0.73)",
        "towards space",
    ]
    strip = token_strip(RIGHT, key="k")
    assert strip.size == (256, 256)
