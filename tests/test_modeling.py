"""Model loading, label alignment, encoding and prediction on tiny local models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from builders import KEYWORDS, save_tiny_english_model

from mlflow_explain.errors import ModelError
from mlflow_explain.modeling import align_labels, encode_texts, load_pretrained, max_input_length, predict_proba

LABELS = sorted(KEYWORDS)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_english_model(tmp_path_factory.mktemp("model") / "tiny")


def test_load_pretrained_from_folder_keeps_saved_labels(model_dir):
    model, tokenizer = load_pretrained(str(model_dir))
    assert model.config.id2label == dict(enumerate(LABELS))
    assert tokenizer.is_fast
    assert tokenizer.tokenize("rocket launch") == ["rocket", "launch"]


def test_load_pretrained_with_new_labels_resizes_head(model_dir):
    model, _ = load_pretrained(str(model_dir), ["a", "b", "c", "d"])
    assert model.config.num_labels == 4
    assert model.config.id2label[3] == "d"
    assert model.classifier.out_features == 4


def test_missing_folder_and_unknown_hub_id_give_model_errors(tmp_path):
    with pytest.raises(ModelError, match="folder"):
        load_pretrained(str(tmp_path))  # exists but holds no model
    with pytest.raises(ModelError, match="Hub"):
        load_pretrained("no-such-org/no-such-model-for-tests")


@pytest.mark.parametrize("path", ["./no/such/model", "/no/such/model", "~/no-such-model", "a/b/c"])
def test_a_missing_model_folder_is_reported_as_a_folder_not_a_hub_id(path):
    with pytest.raises(ModelError) as caught:
        load_pretrained(path)
    assert str(caught.value) == f"{path}: no such model folder. Check the path given as the model."


def test_a_file_given_as_the_model_is_refused(model_dir):
    with pytest.raises(ModelError, match=r"model.safetensors: is a file, not a model folder"):
        load_pretrained(str(model_dir / "model.safetensors"))


def test_a_bare_encoder_is_refused_for_explaining_and_fine_tuned_with_labels(tmp_path, model_dir):
    from transformers import AutoTokenizer, BertModel

    bare = tmp_path / "bare"
    BertModel.from_pretrained(str(model_dir)).save_pretrained(bare)
    AutoTokenizer.from_pretrained(str(model_dir)).save_pretrained(bare)
    with pytest.raises(ModelError, match=r"no classification head \(missing classifier.bias, classifier.weight\)"):
        load_pretrained(str(bare))
    model, _ = load_pretrained(str(bare), LABELS)  # fine-tuning initialises the head
    assert model.classifier.out_features == len(LABELS)


def test_corrupt_weights_are_one_model_error(tmp_path, model_dir):
    import shutil

    corrupt = shutil.copytree(model_dir, tmp_path / "corrupt")
    weights = corrupt / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ModelError) as caught:
        load_pretrained(str(corrupt))
    assert str(caught.value).startswith(f"cannot load the weights of model {str(corrupt)!r} (folder): ")
    assert str(caught.value).endswith("The weights file is damaged: save or copy the model again.")


def test_a_tokenizer_without_pad_token_pads_with_its_eos_token(tmp_path, caplog):
    from builders import save_tiny_gpt2_model

    model, tokenizer = load_pretrained(str(save_tiny_gpt2_model(tmp_path / "gpt2")))
    assert tokenizer.pad_token == tokenizer.eos_token == "<eos>"
    assert model.config.pad_token_id == tokenizer.pad_token_id
    assert "padding with its end-of-sequence token '<eos>'" in caplog.text
    encoded = encode_texts(tokenizer, ["rocket launch", "the big rocket launch today"], 32)
    probs = predict_proba(model, tokenizer, encoded)
    alone = predict_proba(model, tokenizer, encoded[:1])
    np.testing.assert_allclose(probs[0], alone[0], atol=1e-6)  # padding does not change the short text's answer


def test_a_tokenizer_that_cannot_pad_is_refused(tmp_path):
    from builders import save_tiny_gpt2_model
    from transformers import AutoTokenizer

    folder = save_tiny_gpt2_model(tmp_path / "gpt2")
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    tokenizer.eos_token = None
    tokenizer.save_pretrained(folder)
    with pytest.raises(ModelError, match="neither a pad token nor an end-of-sequence token"):
        load_pretrained(str(folder))


def test_align_labels_names_generic_classes(tmp_path):
    model, _ = load_pretrained(str(save_tiny_english_model(tmp_path / "m", id2label=False)))
    assert model.config.id2label[0] == "LABEL_0"
    align_labels(model, LABELS)
    assert [model.config.id2label[i] for i in range(3)] == LABELS
    assert model.config.label2id["space"] == 2


def test_align_labels_rejects_mismatched_models(tmp_path, model_dir):
    generic, _ = load_pretrained(str(save_tiny_english_model(tmp_path / "m", id2label=False)))
    with pytest.raises(ModelError, match="3 outputs but the data has 2 labels"):
        align_labels(generic, ["x", "y"])
    named, _ = load_pretrained(str(model_dir))
    with pytest.raises(ModelError, match="does not know: 'politics'"):
        align_labels(named, ["cooking", "politics"])
    align_labels(named, ["cooking", "space"])  # a subset of the model's labels is fine


def test_encode_texts_truncates_and_flags(model_dir):
    model, tokenizer = load_pretrained(str(model_dir))
    limit = max_input_length(model, tokenizer, 10)
    assert limit == 10
    short, long = encode_texts(tokenizer, ["rocket launch", " ".join(["orbit"] * 50)], limit)
    assert not short.truncated and short.tokens == ("[CLS]", "rocket", "launch", "[SEP]")
    assert short.special == (True, False, False, True)
    assert long.truncated and len(long.input_ids) == 10 and long.n_tokens == 52
    assert long.tokens[-1] == "[SEP]"


@pytest.mark.parametrize("typed", ["[SEP]", "[MASK]", "[PAD]", "[CLS]"])
def test_a_control_token_typed_in_a_text_is_text(model_dir, typed):
    _, tokenizer = load_pretrained(str(model_dir))
    (encoded,) = encode_texts(tokenizer, [f"rocket {typed} launch"], 32)
    assert encoded.special.count(True) == 2 and encoded.tokens[0] == "[CLS]" and encoded.tokens[-1] == "[SEP]"
    assert typed not in encoded.tokens[1:-1]  # spelled out as text, not the control token
    assert encoded.tokens[1] == "rocket" and encoded.tokens[-2] == "launch"
    unknown = tokenizer.unk_token_id
    assert all(i != tokenizer.convert_tokens_to_ids(typed) or i == unknown for i in encoded.input_ids[1:-1])


def test_predict_proba_softmax_and_sigmoid(tmp_path, model_dir):
    model, tokenizer = load_pretrained(str(model_dir))
    encoded = encode_texts(tokenizer, ["rocket launch", "the oven", "goal"], 32)
    probs = predict_proba(model, tokenizer, encoded, batch_size=2)
    assert probs.shape == (3, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    # Padding in a batch must not change a sentence's prediction.
    alone = predict_proba(model, tokenizer, encoded[:1])
    np.testing.assert_allclose(alone[0], probs[0], atol=1e-5)

    multi, tok = load_pretrained(
        str(save_tiny_english_model(tmp_path / "ml", problem_type="multi_label_classification"))
    )
    encoded = encode_texts(tok, ["rocket launch"], 32)
    probs = predict_proba(multi, tok, encoded)
    with torch.no_grad():
        logits = multi(input_ids=torch.tensor([encoded[0].input_ids])).logits
    np.testing.assert_allclose(probs[0], torch.sigmoid(logits)[0].numpy(), atol=1e-6)


def test_predict_proba_restores_training_mode(model_dir):
    model, tokenizer = load_pretrained(str(model_dir))
    model.train()
    predict_proba(model, tokenizer, encode_texts(tokenizer, ["goal"], 32))
    assert model.training


def test_the_embedded_model_trains_for_a_number_of_steps_unless_epochs_are_given():
    from mlflow_explain.config import EMBEDDED_EPOCHS, EMBEDDED_STEPS, TrainConfig

    embedded = TrainConfig()
    assert embedded.for_data(414).epochs == 16.0  # the embedded data set: 26 batches of 16 an epoch
    assert embedded.for_data(414).epochs * 26 >= EMBEDDED_STEPS > (embedded.for_data(414).epochs - 1) * 26
    assert TrainConfig(batch_size=24).for_data(414).epochs == 23.0  # 18 batches
    assert embedded.for_data(36).epochs == EMBEDDED_EPOCHS  # 3 batches: capped
    assert embedded.for_data(100_000).epochs == 1.0
    assert TrainConfig(epochs=2.5).for_data(36).epochs == 2.5  # given epochs stay
    pretrained = TrainConfig(model="some/bert")
    assert pretrained.for_data(414) is pretrained and pretrained.resolved_epochs == 3.0
