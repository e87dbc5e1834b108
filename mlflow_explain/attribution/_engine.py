"""Machinery shared by the native attribution methods.

Every native method turns sentences into *rows* (model inputs: an interpolation step, an occluded
copy, a coalition of tokens...), runs the rows through the model in passes and reduces the outputs
back to per-token scores. This module holds the shared parts:

- :class:`SentenceInputs`: ids, baseline ids and the id conventions of each sentence;
- :func:`plan_passes`: rows grouped by sentence length and cut into passes that respect a memory
  bound (``internal_batch_size`` rows, or :func:`token_budget` padded tokens);
- :func:`forward_logits` / :func:`probabilities`: padded, masked model calls, optionally with the
  word-embedding output replaced (what Captum's ``LayerIntegratedGradients`` does with a hook);
- :func:`target_token_scores`: the gradients of every requested label from one forward pass;
- :func:`time_budget` / :func:`check_time_budget`: a deadline for the work of one call, checked
  between passes (the explainer's way to stop a request that runs too long);
- :func:`shared_use` / :func:`exclusive_use`: per-object locks for explaining with one model from many
  threads (work that changes the model for every thread, such as Captum's hooks, runs alone).

Tensors are built on the CPU and moved to the model's device once per pass.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import dataclasses
import inspect
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from mlflow_explain.attribution._shortcuts import exact_shortcuts
from mlflow_explain.attribution.base import EncodedText, RawAttribution
from mlflow_explain.errors import ExplanationError, TimeBudgetExceeded

__all__ = [
    "ACCELERATOR_TOKEN_BUDGET",
    "TOKEN_BUDGET",
    "Row",
    "SentenceInputs",
    "TimeBudgetExceeded",
    "activation_jacobian",
    "check_time_budget",
    "exclusive_use",
    "forward_logits",
    "l2_normalize",
    "model_device",
    "output_function",
    "padded_targets",
    "plan_passes",
    "probabilities",
    "probe_batch",
    "reference_token_id",
    "remaining_time",
    "shared_use",
    "stack_rows",
    "target_token_scores",
    "time_budget",
    "token_budget",
]

TOKEN_BUDGET = 1024
"""Padded tokens per forward pass on the CPU when ``internal_batch_size`` is unset.

This bounds the activations kept for the backward passes, so a long text or many sentences cannot
exhaust memory. On a CPU small passes are also the fastest (they stay in cache): for a 4-layer BERT
with hidden size 256 on one thread, 1024 tokens ran about 15% faster than 4096 and 30% than 8192.
"""

ACCELERATOR_TOKEN_BUDGET = 8192
"""Padded tokens per forward pass on a GPU (or another accelerator), where larger passes pay off."""

_OWN_IDS_MODEL_TYPES = ("roberta",)
"""Model types to which transformers-interpret passes no position or token type ids."""


def model_device(model) -> torch.device:
    """The device of the model's parameters (the CPU for a model without any)."""
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def token_budget(device: torch.device) -> int:
    """Padded tokens per forward pass on ``device`` when ``internal_batch_size`` is unset."""
    return TOKEN_BUDGET if device.type == "cpu" else ACCELERATOR_TOKEN_BUDGET


def reference_token_id(model, tokenizer) -> int:
    """The token that stands for "no text" in baselines and occlusions.

    As in transformers-interpret: the pad token, or the end-of-sequence token for GPT-2.

    Raises:
        ExplanationError: If the tokenizer has neither a pad, an end-of-sequence nor an unknown token.
    """
    candidates = (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id)
    if getattr(model.config, "model_type", None) == "gpt2":
        candidates = (tokenizer.eos_token_id, *candidates)
    for candidate in candidates:
        if candidate is not None:
            return int(candidate)
    raise ExplanationError("the tokenizer has no pad, end-of-sequence or unknown token; set `tokenizer.pad_token`.")


@dataclass(frozen=True)
class _Deadline:
    at: float
    """``time.monotonic()`` when the budget runs out."""
    seconds: float


_DEADLINE: contextvars.ContextVar[_Deadline | None] = contextvars.ContextVar("mlflow_explain_deadline", default=None)
"""The deadline of the work running in this thread (context variables are per thread)."""


@contextlib.contextmanager
def time_budget(seconds: float | None) -> Iterator[None]:
    """Stop the explaining done inside the block, in this thread, once ``seconds`` have passed.

    The deadline is checked between forward passes, between sentences and while waiting for a
    lock (:func:`check_time_budget`); a pass that has started runs to its end, so the work stops at
    most one pass late. Other threads are not affected. Inside another budget, the earlier
    deadline holds.

    Args:
        seconds: The budget, or ``None`` for none.

    Raises:
        TimeBudgetExceeded: From the work inside the block, once the budget has run out.

    Example:
        >>> with time_budget(25.0):
        ...     raw = LayerIG().attribute(model, tokenizer, encoded, targets, config)  # doctest: +SKIP
    """
    if seconds is None:
        yield
        return
    deadline = _Deadline(time.monotonic() + seconds, seconds)
    outer = _DEADLINE.get()
    token = _DEADLINE.set(outer if outer is not None and outer.at <= deadline.at else deadline)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def check_time_budget() -> None:
    """Raise :class:`TimeBudgetExceeded` if this thread's :func:`time_budget` has run out (no budget: nothing)."""
    deadline = _DEADLINE.get()
    if deadline is not None and time.monotonic() >= deadline.at:
        raise TimeBudgetExceeded(deadline.seconds)


def remaining_time() -> float | None:
    """Seconds left of this thread's :func:`time_budget` (at least 0), or ``None`` without a budget."""
    deadline = _DEADLINE.get()
    return None if deadline is None else max(0.0, deadline.at - time.monotonic())


class _Access:
    """A readers-writer lock, reentrant in each thread; a waiting writer goes before new readers.

    Waits end with :class:`TimeBudgetExceeded` when the waiting thread's :func:`time_budget` runs out.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._readers: dict[int, int] = {}  # thread -> depth
        self._writer: int | None = None
        self._writer_depth = 0
        self._waiting_writers = 0

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        me = threading.get_ident()
        with self._condition:
            if self._writer != me and me not in self._readers:
                self._wait(lambda: self._writer is None and not self._waiting_writers)
            self._readers[me] = self._readers.get(me, 0) + 1
        try:
            yield
        finally:
            with self._condition:
                self._readers[me] -= 1
                if not self._readers[me]:
                    del self._readers[me]
                    self._condition.notify_all()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        me = threading.get_ident()
        with self._condition:
            if self._writer != me:
                if me in self._readers:
                    raise RuntimeError("a thread that shares an object cannot take it exclusively (deadlock)")
                self._waiting_writers += 1
                try:
                    self._wait(lambda: self._writer is None and not self._readers)
                finally:
                    self._waiting_writers -= 1
                    self._condition.notify_all()
                self._writer = me
            self._writer_depth += 1
        try:
            yield
        finally:
            with self._condition:
                self._writer_depth -= 1
                if not self._writer_depth:
                    self._writer = None
                    self._condition.notify_all()

    def _wait(self, ready: Callable[[], bool]) -> None:
        """Wait (holding the condition) until ``ready()``, at most until this thread's deadline."""
        while not self._condition.wait_for(ready, timeout=remaining_time()):
            check_time_budget()


_accesses: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_accesses_guard = threading.Lock()


def _access(obj: object) -> _Access:
    with _accesses_guard:
        access = _accesses.get(obj)
        if access is None:
            access = _accesses[obj] = _Access()
        return access


@contextlib.contextmanager
def shared_use(obj: object) -> Iterator[None]:
    """Use ``obj`` (a model) alongside other threads that share it, but never during an :func:`exclusive_use`.

    For work that is safe in many threads at once: forward passes, and the engine's own embedding
    hook (which acts in its caller's thread only, see :func:`forward_logits`). Reentrant.

    Raises:
        TimeBudgetExceeded: If this thread's :func:`time_budget` runs out while waiting.
    """
    with _access(obj).shared():
        yield


@contextlib.contextmanager
def exclusive_use(obj: object) -> Iterator[None]:
    """Use ``obj`` alone: no other thread uses it, shared or exclusively, until the block ends.

    For work that changes the object for every thread: Captum's hooks on a model's embedding layer
    (``interpret-lig``) replace the embeddings of any forward pass; a fast tokenizer's truncation
    setting is one for all callers. Reentrant; a thread inside :func:`shared_use` of the same
    object cannot enter (``RuntimeError``).

    Raises:
        TimeBudgetExceeded: If this thread's :func:`time_budget` runs out while waiting.
    """
    with _access(obj).exclusive():
        yield


@dataclass(frozen=True)
class Row:
    """One model input.

    Args:
        ids: Token ids, shape ``(length,)``.
        position_ids: Explicit position ids, or ``None`` for the model's own.
        token_type_ids: Explicit token type ids, or ``None`` for the model's own.
        embedding_ids: Ids whose word embeddings replace those of ``ids``, or ``None``. What the model
            derives from the ids themselves (RoBERTa's position ids, the last non-pad token that a
            decoder classifier pools) still reads ``ids``. Applied by :func:`probabilities`.
    """

    ids: torch.Tensor
    position_ids: torch.Tensor | None = None
    token_type_ids: torch.Tensor | None = None
    embedding_ids: torch.Tensor | None = None


class SentenceInputs:
    """The inputs and baselines of a list of sentences.

    The baseline of a sentence keeps its special tokens and replaces every other token with the
    reference token (:func:`reference_token_id`), like transformers-interpret's
    ``[CLS] + [PAD] * n + [SEP]``.

    By default both the input and the baseline leave position and token type ids to the model, so
    the explained output is the model's prediction and the baseline differs from the input in the
    word embeddings only. With ``parity=True`` the ids follow transformers-interpret instead:
    explicit position ids, token type 1 for the last special token (``0 if i <= n_text_tokens
    else 1``), and for the baseline all-zero position and token type ids. Layer Integrated
    Gradients interpolates the word embeddings only, so those baseline ids matter only to the
    convergence delta, which then includes the change they cause.

    Args:
        model: The classifier.
        tokenizer: Its tokenizer.
        texts: Encoded sentences.
        parity: Follow transformers-interpret's id conventions. Defaults to False.
    """

    def __init__(self, model, tokenizer, texts: Sequence[EncodedText], parity: bool = False):
        self.reference_id = reference_token_id(model, tokenizer)
        self.pad_id = self.reference_id if tokenizer.pad_token_id is None else int(tokenizer.pad_token_id)
        self.ids = [torch.tensor(t.input_ids, dtype=torch.long) for t in texts]
        self.special = [torch.tensor(t.special, dtype=torch.bool) for t in texts]
        self.baseline_ids = [
            torch.where(special, ids, torch.full_like(ids, self.reference_id))
            for ids, special in zip(self.ids, self.special, strict=True)
        ]
        model_type = getattr(model.config, "model_type", None)
        parameters = inspect.signature(model.forward).parameters
        self._parity = parity
        self._positions = parity and "position_ids" in parameters and model_type not in _OWN_IDS_MODEL_TYPES
        self._token_types = parity and "token_type_ids" in parameters and model_type not in _OWN_IDS_MODEL_TYPES

    def __len__(self) -> int:
        return len(self.ids)

    def select(self, indices: Sequence[int]) -> SentenceInputs:
        """The inputs of the sentences at ``indices``, in that order (nothing is tokenized again)."""
        chosen = copy.copy(self)
        chosen.ids = [self.ids[i] for i in indices]
        chosen.special = [self.special[i] for i in indices]
        chosen.baseline_ids = [self.baseline_ids[i] for i in indices]
        return chosen

    @property
    def lengths(self) -> list[int]:
        """Token count of each sentence, special tokens included."""
        return [len(ids) for ids in self.ids]

    def input_row(self, i: int) -> Row:
        """Sentence ``i`` with its id conventions."""
        length = len(self.ids[i])
        positions = torch.arange(length) if self._positions else None
        token_types = None
        if self._token_types:
            n_text = int((~self.special[i]).sum())
            token_types = (torch.arange(length) > n_text).long()
        return Row(self.ids[i], positions, token_types)

    def baseline_row(self, i: int) -> Row:
        """The baseline of sentence ``i`` as the convergence delta evaluates it.

        By default the start of the integration path: the input's row with the baseline's word
        embeddings (``embedding_ids``), since the path moves the word embeddings only. Run as token
        ids instead, a baseline of pad tokens would also move RoBERTa's position ids (derived from
        the pad tokens) and the token a decoder classifier pools (the last non-pad one), and the
        delta would never reach 0. With ``parity``, transformers-interpret's baseline: the baseline
        ids with all-zero position and token type ids.
        """
        if not self._parity:
            return dataclasses.replace(self.input_row(i), embedding_ids=self.baseline_ids[i])
        zeros = torch.zeros(len(self.ids[i]), dtype=torch.long)
        return Row(
            self.baseline_ids[i],
            zeros if self._positions else None,
            zeros if self._token_types else None,
        )


def plan_passes(
    lengths: Sequence[int],
    rows_per_item: Sequence[int],
    internal_batch_size: int | None,
    token_budget: int,
) -> Iterator[list[tuple[int, int]]]:
    """Cut rows into forward passes, shortest sentences first.

    Items (sentences) are visited by increasing length so that a pass pads little; the rows of an
    item stay together. A pass holds at most ``internal_batch_size`` rows, or when that is unset as
    many as fit ``token_budget`` padded tokens (at least one).

    Args:
        lengths: Token count of each item.
        rows_per_item: Number of rows of each item.
        internal_batch_size: Most rows per pass, or ``None`` for the token budget.
        token_budget: Most padded tokens per pass when ``internal_batch_size`` is ``None``.

    Yields:
        Lists of ``(item, row_of_item)`` pairs.

    Raises:
        TimeBudgetExceeded: Before a pass, once this thread's :func:`time_budget` has run out.
    """
    current: list[tuple[int, int]] = []
    for item in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        limit = internal_batch_size or max(1, token_budget // max(1, lengths[item]))
        for row in range(rows_per_item[item]):
            if len(current) >= limit:
                check_time_budget()
                yield current
                current = []
            current.append((item, row))
    if current:
        check_time_budget()
        yield current


def stack_rows(rows: Sequence[Row], pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Pad rows to a batch of model keyword arguments, with an attention mask over the real tokens."""
    from torch.nn.utils.rnn import pad_sequence

    lengths = torch.tensor([len(r.ids) for r in rows])
    inputs = {
        "input_ids": pad_sequence([r.ids for r in rows], batch_first=True, padding_value=pad_id),
        "attention_mask": (torch.arange(int(lengths.max()))[None, :] < lengths[:, None]).long(),
    }
    for name in ("position_ids", "token_type_ids"):
        values = [getattr(r, name) for r in rows]
        if values[0] is not None:
            inputs[name] = pad_sequence(values, batch_first=True, padding_value=0)
    return {name: tensor.to(device) for name, tensor in inputs.items()}


def probe_batch(rows: Sequence[Row], pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    """The shortest and the longest of ``rows``, padded: the inputs on which :func:`exact_shortcuts` checks itself."""
    lengths = [len(r.ids) for r in rows]
    picked = sorted({lengths.index(min(lengths)), lengths.index(max(lengths))})
    return stack_rows([rows[i] for i in picked], pad_id, device)


def forward_logits(model, inputs: dict[str, torch.Tensor], embeddings: torch.Tensor | None = None) -> torch.Tensor:
    """Run the model and return its logits as float32.

    Args:
        model: The classifier.
        inputs: Keyword arguments from :func:`stack_rows`.
        embeddings: Replaces the output of the model's input-embedding layer (shape ``(rows, width,
            hidden)``), or ``None`` to run the model as is. The replacement applies to this
            thread's call only, so threads may explain with one model at the same time.

    Returns:
        Logits of shape ``(rows, num_labels)``.
    """
    if embeddings is None:
        output = model(**inputs)
    else:
        caller = threading.get_ident()

        def replace(_module, _args, _output):
            return embeddings if threading.get_ident() == caller else None

        handle = model.get_input_embeddings().register_forward_hook(replace)
        try:
            output = model(**inputs)
        finally:
            handle.remove()
    logits = output.logits if hasattr(output, "logits") else output[0]
    return logits.float()


def output_function(logits: torch.Tensor, activation: str) -> torch.Tensor:
    """Label probabilities from logits: ``"softmax"`` or ``"sigmoid"``."""
    return torch.sigmoid(logits) if activation == "sigmoid" else torch.softmax(logits, dim=-1)


@torch.no_grad()
def probabilities(
    model,
    rows: Sequence[Row],
    pad_id: int,
    activation: str,
    internal_batch_size: int | None = None,
) -> torch.Tensor:
    """Label probabilities of many rows, in passes grouped by length (see :func:`plan_passes`).

    The softmax (or sigmoid) is taken in float64 from the model's logits: the perturbation methods and
    the completeness error subtract probabilities close to 1, where float32 keeps only a few digits
    of the difference.

    Returns:
        Float64 tensor of shape ``(len(rows), num_labels)`` on the CPU, in the order of ``rows``.

    Raises:
        TimeBudgetExceeded: Between passes, once this thread's :func:`time_budget` has run out.
    """
    device = model_device(model)
    out = torch.empty((len(rows), int(model.config.num_labels)), dtype=torch.float64)
    if not rows:
        return out
    lengths = [len(r.ids) for r in rows]
    with shared_use(model), exact_shortcuts(model, probe_batch(rows, pad_id, device)):
        for batch in plan_passes(lengths, [1] * len(rows), internal_batch_size, token_budget(device)):
            index = [item for item, _ in batch]
            chosen = [rows[i] for i in index]
            embeddings = _replaced_embeddings(model, chosen, pad_id)
            logits = forward_logits(model, stack_rows(chosen, pad_id, device), embeddings)
            out[index] = output_function(logits.double(), activation).cpu()
    return out


def _replaced_embeddings(model, rows: Sequence[Row], pad_id: int) -> torch.Tensor | None:
    """The word embeddings of ``rows`` padded as :func:`stack_rows` pads them, ``embedding_ids`` where a row
    has them; ``None`` when no row has any (the model then embeds its ids itself)."""
    from torch.nn.utils.rnn import pad_sequence

    if all(r.embedding_ids is None for r in rows):
        return None
    ids = [r.ids if r.embedding_ids is None else r.embedding_ids for r in rows]
    embedding = model.get_input_embeddings()
    return embedding(pad_sequence(ids, batch_first=True, padding_value=pad_id).to(embedding.weight.device))


def padded_targets(targets: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sentence label lists as a ``(sentences, most_targets)`` label tensor and a validity mask."""
    width = max((len(t) for t in targets), default=0)
    labels = torch.zeros((len(targets), max(width, 1)), dtype=torch.long)
    valid = torch.zeros_like(labels, dtype=torch.bool)
    for i, label_ids in enumerate(targets):
        labels[i, : len(label_ids)] = torch.tensor([int(x) for x in label_ids], dtype=torch.long)
        valid[i, : len(label_ids)] = True
    return labels, valid


def activation_jacobian(logits: torch.Tensor, activation: str, labels: torch.Tensor) -> torch.Tensor:
    """Derivatives of the targeted label probabilities with respect to the logits.

    Args:
        logits: Shape ``(rows, num_labels)``.
        activation: ``"softmax"`` or ``"sigmoid"``.
        labels: Targeted label of each row and slot, shape ``(rows, slots)``.

    Returns:
        ``d output[labels[r, k]] / d logits[r]`` of shape ``(rows, slots, num_labels)``.
    """
    one_hot = torch.nn.functional.one_hot(labels, logits.shape[-1]).to(logits.dtype)
    probs = output_function(logits, activation)
    chosen = probs.gather(1, labels)[..., None]
    if activation == "sigmoid":
        return chosen * (1 - chosen) * one_hot
    return chosen * (one_hot - probs[:, None, :])


def target_token_scores(
    logits: torch.Tensor,
    embeddings: torch.Tensor,
    cotangents: torch.Tensor,
    reduce: Callable[[torch.Tensor], torch.Tensor],
    linear: bool,
    activation: str,
) -> torch.Tensor:
    """Per-token reductions of the gradients of all targeted outputs, from one forward pass.

    The gradient of target ``k`` in row ``r`` is ``J_r^T cotangents[r, k]``, where ``J_r`` is the
    Jacobian of the logits with respect to the embeddings. Backward passes are linear in the
    cotangent, so the graph of the single forward pass is reused for one backward pass per
    direction. When ``reduce`` is linear and the output is a softmax, every cotangent sums to zero
    and the ``num_labels - 1`` directions ``e_j - e_last`` span them all, so all labels cost one
    backward pass fewer than labels; otherwise each target slot gets its own pass. (A single
    backward batched over the slots with ``is_grads_batched`` computes the same; on CPU it measured
    about 1.5 times slower than these passes.)

    Args:
        logits: Output of :func:`forward_logits` on ``embeddings``, shape ``(rows, num_labels)``.
        embeddings: The replaced embeddings, requiring grad, shape ``(rows, width, hidden)``.
        cotangents: Shape ``(rows, slots, num_labels)``: derivatives of each targeted output with
            respect to the logits, already scaled by any per-row weight (zero for unused slots).
        reduce: Maps a gradient ``(rows, width, hidden)`` to per-token values ``(rows, width)``.
        linear: Whether ``reduce`` is linear (a weighted sum over the hidden size).
        activation: ``"softmax"`` or ``"sigmoid"``.

    Returns:
        Shape ``(rows, slots, width)``.
    """
    rows, slots, n_labels = cotangents.shape
    if linear and activation == "softmax" and 1 < n_labels <= slots + 1:
        basis = torch.eye(n_labels, device=logits.device)
        directions = [(basis[j] - basis[-1]).expand(rows, n_labels) for j in range(n_labels - 1)]
        weights = cotangents[..., : n_labels - 1]
    else:
        directions = [cotangents[:, k, :] for k in range(slots)]
        weights = None
    out = torch.zeros((rows, slots, embeddings.shape[1]), device=embeddings.device)
    for j, direction in enumerate(directions):
        (gradient,) = torch.autograd.grad(logits, embeddings, direction, retain_graph=j < len(directions) - 1)
        reduced = reduce(gradient).float()
        if weights is None:
            out[:, j] = reduced
        else:
            out += weights[..., j, None] * reduced[:, None, :]
    return out


def l2_normalize(raw: RawAttribution) -> RawAttribution:
    """Divide each row of scores by its L2 norm (rows of zeros stay zero); deltas are kept raw."""
    norms = np.linalg.norm(raw.scores, axis=-1, keepdims=True)
    scores = np.divide(raw.scores, norms, out=np.zeros_like(raw.scores), where=norms > 0)
    return dataclasses.replace(raw, scores=scores)
