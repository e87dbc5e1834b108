"""A v1-shaped Japanese BERT (IPAdic words, no dictionary in its tokenizer config) loads and explains as trained."""

from __future__ import annotations

import mlflow
import pytest
from builders import save_tiny_v1_japanese_model
from click.testing import CliRunner
from mlflow import MlflowClient
from transformers import AutoTokenizer

from mlflow_explain.cli import cli
from mlflow_explain.config import DataConfig
from mlflow_explain.data import load_dataset
from mlflow_explain.modeling import encode_texts, load_pretrained
from mlflow_explain.tokenization import tokenizer_dictionary, tokenizer_load_kwargs


@pytest.fixture(scope="module")
def dataset():
    return load_dataset(DataConfig())


@pytest.fixture(scope="module")
def v1_folder(dataset, tmp_path_factory):
    texts = [e.text for e in (*dataset.train, *dataset.eval)]
    return save_tiny_v1_japanese_model(tmp_path_factory.mktemp("v1") / "model", texts, list(dataset.labels))


def _unknown(tokenizer, texts) -> int:
    return sum(e.tokens.count("[UNK]") for e in encode_texts(tokenizer, texts, 64))


def test_a_v1_tokenizer_gets_the_dictionary_it_was_trained_with(v1_folder, dataset):
    texts = [e.text for e in dataset.eval]
    assert tokenizer_load_kwargs(str(v1_folder)) == {"mecab_kwargs": {"mecab_dic": "ipadic"}}
    _, tokenizer = load_pretrained(str(v1_folder))
    assert tokenizer_dictionary(tokenizer) == "ipadic"
    assert _unknown(tokenizer, texts) == 0  # every IPAdic word is in its vocabulary
    assert tokenizer.tokenize("お金") == ["お金"]

    # The control: transformers 5 alone cuts the same texts with unidic-lite, and the words fall apart.
    plain = AutoTokenizer.from_pretrained(str(v1_folder))
    assert tokenizer_dictionary(plain) == "unidic_lite"
    assert _unknown(plain, texts) > 50


def test_tokenizers_that_name_their_dictionary_load_as_saved(v1_folder, tmp_path):
    _, tokenizer = load_pretrained(str(v1_folder))
    tokenizer.save_pretrained(tmp_path)  # now the config names ipadic
    assert tokenizer_load_kwargs(str(tmp_path)) == {}
    assert tokenizer_load_kwargs(str(tmp_path / "missing")) == {}


@pytest.mark.slow  # a whole job against a real store: the full suite, not the fast lane
def test_the_explain_job_logs_the_dictionary_and_the_unknown_share(v1_folder, tracking):
    result = CliRunner().invoke(
        cli, ["explain", "--model", str(v1_folder), "--n-explain", "9", "--n-steps", "4", "--quality", "false"]
    )
    assert result.exit_code == 0, result.output
    (run,) = MlflowClient().search_runs([mlflow.get_experiment_by_name("tests").experiment_id])
    assert run.data.params["tokenizer_dictionary"] == "ipadic"
    assert run.data.metrics["unk_share"] == 0.0
