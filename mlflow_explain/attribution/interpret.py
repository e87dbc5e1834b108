"""Layer Integrated Gradients through transformers-interpret, with the right output function.

transformers-interpret's ``MultiLabelClassificationExplainer`` attributes ``sigmoid(logit)`` of
each label and drops the caller's ``n_steps`` and ``internal_batch_size``. This backend uses its
``SequenceClassificationExplainer`` one label index at a time instead, attributing the softmax
probability of the label for single-label classifiers and the sigmoid for models whose
``problem_type`` is ``multi_label_classification``, with ``n_steps`` passed through. It feeds the
explainer our own (truncated) token ids, so long texts cannot overflow the model. Without an
``internal_batch_size``, Captum gets as many steps per pass as fit the engine's token budget
(:func:`~mlflow_explain.attribution._engine.token_budget`): the same scores (within 1e-7) as all steps in
one pass, in bounded memory (``n_steps=4096`` on a 128-token text took 7.9 GB in one pass), faster, and
with the time budget checked between passes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from mlflow_explain.attribution._engine import check_time_budget, exclusive_use, model_device, token_budget
from mlflow_explain.attribution.base import EncodedText, RawAttribution, output_activation
from mlflow_explain.config import ExplainConfig
from mlflow_explain.errors import ExplanationError

__all__ = ["InterpretLIG"]


def _explainer_class():
    try:
        from transformers_interpret import SequenceClassificationExplainer
    except ImportError as err:
        raise ExplanationError(
            "method 'interpret-lig' needs transformers-interpret: pip install transformers-interpret"
        ) from err

    class _EncodedExplainer(SequenceClassificationExplainer):
        """Explains pre-encoded ids with a chosen output activation."""

        activation = "softmax"
        encoded: EncodedText | None = None

        def _make_input_reference_pair(self, text):
            ids = list(self.encoded.input_ids)
            inner = [i for i, special in zip(ids, self.encoded.special, strict=True) if not special]
            ref = [self.ref_token_id if not s else i for i, s in zip(ids, self.encoded.special, strict=True)]
            device = self.device
            return torch.tensor([ids], device=device), torch.tensor([ref], device=device), len(inner)

        def _forward(self, input_ids, token_type_ids=None, position_ids=None, attention_mask=None):
            check_time_budget()  # Captum calls this per batch of steps and removes its hooks when it raises
            logits = self._get_preds(input_ids, token_type_ids, position_ids, attention_mask)[0]
            probs = torch.sigmoid(logits) if self.activation == "sigmoid" else torch.softmax(logits, dim=1)
            self.pred_probs = probs[0][self.selected_index]
            return probs[:, self.selected_index]

    return _EncodedExplainer


class InterpretLIG:
    """Layer Integrated Gradients on the word embeddings, via transformers-interpret."""

    name = "interpret-lig"
    description = (
        "Layer Integrated Gradients via transformers-interpret's SequenceClassificationExplainer, "
        "one label at a time (softmax, or sigmoid for multi-label models); L2-normalised scores."
    )
    checks_completeness = False
    """Its delta is transformers-interpret's (another baseline than its path), so no tolerance applies."""

    def attribute(
        self,
        model,
        tokenizer,
        texts: Sequence[EncodedText],
        targets: Sequence[Sequence[int]],
        config: ExplainConfig,
    ) -> list[RawAttribution]:
        """See :meth:`mlflow_explain.attribution.base.AttributionMethod.attribute`.

        A call uses the model alone (:func:`~mlflow_explain.attribution._engine.exclusive_use`): the
        hooks that Captum registers on the embedding layer would replace the embeddings of any other
        thread's forward pass, whatever the method. The explainer object holds per-call state, so
        each call builds its own.

        Raises:
            TimeBudgetExceeded: Between labels, sentences and Captum's batches of steps, or while
                waiting for the model, once this thread's time budget has run out.
        """
        with exclusive_use(model):
            return self._attribute(model, tokenizer, texts, targets, config)

    def _attribute(self, model, tokenizer, texts, targets, config: ExplainConfig) -> list[RawAttribution]:
        explainer = _explainer_class()(model, tokenizer)
        explainer.activation = output_activation(model)
        results = []
        for encoded, label_ids in zip(texts, targets, strict=True):
            explainer.encoded = encoded
            scores, deltas = [], []
            for index in label_ids:
                check_time_budget()
                pairs = explainer(
                    encoded.text,
                    index=int(index),
                    n_steps=config.n_steps,
                    internal_batch_size=config.internal_batch_size or _steps_per_pass(model, encoded),
                )
                scores.append([score for _, score in pairs])
                deltas.append(float(explainer.attributions.delta.detach().cpu().reshape(-1)[0]))
            results.append(
                RawAttribution(
                    scores=np.nan_to_num(np.asarray(scores, dtype=np.float64)),
                    deltas=np.asarray(deltas, dtype=np.float64),
                )
            )
        return results


def _steps_per_pass(model, encoded: EncodedText) -> int:
    """Interpolation steps per forward pass that fit the token budget (at least 2, the fewest Captum takes)."""
    return max(2, token_budget(model_device(model)) // len(encoded.input_ids))
