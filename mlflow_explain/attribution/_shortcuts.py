"""Exact shortcuts for explaining: work that the model's output does not need, or repeats.

The gradient methods run each batch of rows forward once and then backward once per label
direction (:func:`~mlflow_explain.attribution._engine.target_token_scores`): eight backward passes
for the nine labels of a softmax classifier. Part of the work of those passes depends on the
forward pass only, and part of every forward pass never reaches the logits. Inside
:func:`exact_shortcuts` (used by the gradient methods and by
:func:`~mlflow_explain.attribution._engine.probabilities`, which the perturbation methods and the
convergence deltas run) the model skips or shares that work:

- **Activations.** The GELU family and SiLU keep their derivative from the forward pass, and each
  backward pass multiplies by it instead of evaluating ``erf`` and ``exp`` again.
- **Attention, on a CPU.** The eager implementation keeps the attention weights for the backward
  passes; SDPA's fused CPU kernel recomputes them in each one.
- **The last encoder layer** of a BERT-family classifier whose head reads the first token only:
  the query, attention output and feed-forward block of that layer are computed for the first
  token alone (keys and values still cover every token). The other tokens' outputs of that layer
  do not reach the logits, so their forward and backward work is saved.
- **Linear layers, on a CPU where oneDNN is faster.** PyTorch's fp32 matrix products on a CPU go
  through MKL, which on some CPUs (AMD's among them) takes a slower code path than oneDNN's kernels
  (:func:`onednn_is_faster` times both once per layer shape). There the model's ``nn.Linear``
  layers compute through oneDNN (``torch.ops.mkldnn._linear_pointwise``,
  in fp32: the layer is left alone when PyTorch is set to compute fp32 products in lower
  precision), with backward passes that compute the gradient of the input only: the parameters'
  gradients are never needed for explaining.

The shortcuts change how the model computes, not what: on entry the logits of real inputs are
computed with and without them, and if they differ by more than float rounding the model runs as
is. On a 4-layer BERT with hidden size 256 they made Integrated Gradients towards all nine labels
about 1.35 times faster on a 2-core CPU (see ``benchmarks/bench_attribution.py``), and forward
passes alone 1.2 times (1.3 times on the embedded 2-layer model).

The model is changed in place while the context is open (modules swapped, then put back), so other
code that calls the same model from another thread in the meantime computes through the shortcuts
too; contexts may nest or overlap on one model, and the model is restored when the last one closes.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import weakref
from collections.abc import Callable, Iterator

import torch

__all__ = ["exact_shortcuts", "onednn_is_faster"]

logger = logging.getLogger(__name__)

TOLERANCE = 1e-4
"""Largest logit difference (absolute, plus the same relative) that counts as float rounding."""

_FIRST_TOKEN_CLASSIFIERS = frozenset(
    {
        "BertForSequenceClassification",
        "CamembertForSequenceClassification",
        "ElectraForSequenceClassification",
        "RobertaForSequenceClassification",
        "XLMRobertaForSequenceClassification",
    }
)
"""Classifiers whose head reads only the first token of the last layer (BERT's pooler, the
``features[:, 0]`` heads of RoBERTa and ELECTRA) and whose layers have BERT's structure."""

_ACTIVATION_NAMES = (
    "GELUActivation",
    "NewGELUActivation",
    "FastGELUActivation",
    "QuickGELUActivation",
    "AccurateGELUActivation",
    "GELUTanh",
    "PytorchGELUTanh",
    "SiLUActivation",
)
"""Elementwise activations of ``transformers.activations`` whose derivative is worth keeping."""

_lock = threading.Lock()
_users: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> (open contexts, undo)


@contextlib.contextmanager
def exact_shortcuts(model, probe: dict[str, torch.Tensor]) -> Iterator[bool]:
    """Let ``model`` compute faster, with the same results (forward passes, and backward passes repeated on one graph).

    Nothing is changed for a model in training mode, or when the model's logits on ``probe`` differ
    with the shortcuts by more than :data:`TOLERANCE` (logged at debug level).

    Args:
        model: A ``...ForSequenceClassification`` model.
        probe: Model keyword arguments of a few real rows (with padding, ideally) on the model's
            device, used to check that the shortcuts leave the logits unchanged.

    Yields:
        Whether the shortcuts are in place.
    """
    if model.training:
        yield False
        return
    with _lock:
        count, undo = _users.get(model, (0, None))
        if count == 0:
            undo = _install_checked(model, probe)
        _users[model] = (count + 1, undo)
    try:
        yield undo is not None
    finally:
        with _lock:
            count, undo = _users.pop(model)
            if count > 1:
                _users[model] = (count - 1, undo)
            elif undo is not None:
                undo()


def _install_checked(model, probe: dict[str, torch.Tensor]) -> Callable[[], None] | None:
    """Install the shortcuts if they keep the logits on ``probe``; return how to undo them."""
    with torch.no_grad():
        expected = _logits(model, probe)
    undo = _install(model)
    if undo is None:
        return None
    try:
        with torch.enable_grad():  # the activation shortcut only acts where gradients are recorded
            actual = _logits(model, probe).detach()
        agree = actual.shape == expected.shape and torch.allclose(actual, expected, atol=TOLERANCE, rtol=TOLERANCE)
        reason = "" if agree else f"logits differ by up to {(actual - expected).abs().max().item():.2e}"
    except Exception as exc:  # a model whose layers look like BERT's but are not
        agree, reason = False, f"{type(exc).__name__}: {exc}"
    if not agree:
        undo()
        logger.debug("gradient shortcuts not used for %s (%s)", type(model).__name__, reason)
        return None
    return undo


def _logits(model, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    output = model(**inputs)
    return (output.logits if hasattr(output, "logits") else output[0]).float()


def _install(model) -> Callable[[], None] | None:
    steps = [_keep_activation_derivatives(model), _first_token_last_layer(model)]
    if next(model.parameters()).device.type == "cpu":
        steps += [_eager_attention(model), _onednn_linear(model)]
    undos = [undo for undo in steps if undo is not None]
    if not undos:
        return None

    def undo_all() -> None:
        for undo in reversed(undos):
            undo()

    return undo_all


class _SavedDerivative(torch.autograd.Function):
    """``activation(x)`` whose backward multiplies by the derivative computed in the forward pass."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, activation: torch.nn.Module) -> torch.Tensor:
        with torch.enable_grad():
            leaf = x.detach().requires_grad_(True)
            y = activation(leaf)
            (derivative,) = torch.autograd.grad(y, leaf, torch.ones_like(y))
        ctx.save_for_backward(derivative)
        return y.detach()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (derivative,) = ctx.saved_tensors
        return grad * derivative, None


class _ActivationWithSavedDerivative(torch.nn.Module):
    def __init__(self, activation: torch.nn.Module):
        super().__init__()
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            return _SavedDerivative.apply(x, self.activation)
        return self.activation(x)


def _keep_activation_derivatives(model) -> Callable[[], None] | None:
    import transformers.activations

    found = (getattr(transformers.activations, name, None) for name in _ACTIVATION_NAMES)
    kinds = (torch.nn.GELU, torch.nn.SiLU, *(kind for kind in found if isinstance(kind, type)))
    return _swap_children(model, lambda child: isinstance(child, kinds), _ActivationWithSavedDerivative)


def _eager_attention(model) -> Callable[[], None] | None:
    config = model.config
    if getattr(config, "_attn_implementation", None) in (None, "eager"):
        return None
    previous = config._attn_implementation
    config._attn_implementation = "eager"

    def undo() -> None:
        config._attn_implementation = previous

    return undo


def _first_token_last_layer(model) -> Callable[[], None] | None:
    if type(model).__name__ not in _FIRST_TOKEN_CLASSIFIERS:
        return None
    if getattr(model.config, "position_embedding_type", None) not in (None, "absolute"):
        return None
    layers = getattr(getattr(model.base_model, "encoder", None), "layer", None)
    if not layers:
        return None
    last = layers[-1]
    attention = getattr(getattr(last, "attention", None), "self", None)
    needed = ("query", "key", "value", "num_attention_heads", "attention_head_size", "scaling")
    if (
        attention is None
        or not all(hasattr(attention, name) for name in needed)
        or not all(hasattr(last, name) for name in ("intermediate", "output"))
        or getattr(last, "is_decoder", False)
    ):
        return None
    last.forward = functools.partial(_first_token_layer, last)

    def undo() -> None:
        vars(last).pop("forward", None)

    return undo


def _first_token_layer(layer, hidden_states: torch.Tensor, attention_mask=None, *args, **kwargs) -> torch.Tensor:
    """A BERT layer's output for the first token only, shape ``(batch, 1, hidden)``."""
    attention = layer.attention.self
    batch = hidden_states.shape[0]
    first = hidden_states[:, :1]
    heads = (batch, -1, attention.num_attention_heads, attention.attention_head_size)
    query = attention.query(first).view(heads).transpose(1, 2)
    key = attention.key(hidden_states).view(heads).transpose(1, 2)
    value = attention.value(hidden_states).view(heads).transpose(1, 2)
    if attention_mask is not None and attention_mask.dim() == 4:
        attention_mask = attention_mask[:, :, :1, :]
    context = torch.nn.functional.scaled_dot_product_attention(
        query, key, value, attn_mask=attention_mask, scale=attention.scaling
    )
    context = context.transpose(1, 2).reshape(batch, 1, -1)
    attention_output = layer.attention.output(context, first)
    return layer.output(layer.intermediate(attention_output), attention_output)


class _OneDNNLinearFunction(torch.autograd.Function):
    """``x W^T + b`` through oneDNN, whose backward pass computes the input's gradient only."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, layer: _OneDNNLinear) -> torch.Tensor:
        ctx.layer = layer
        return layer.product(x, layer.weight, layer.bias)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        layer = ctx.layer
        return layer.product(grad, layer.weight_t, None), None


class _OneDNNLinear(torch.nn.Module):
    """An ``nn.Linear`` of fp32 weights computed by oneDNN (the original stays the source of its weights)."""

    def __init__(self, linear: torch.nn.Linear):
        super().__init__()
        self.linear = linear
        self.weight = linear.weight.detach()
        self.weight_t = linear.weight.detach().t().contiguous()  # (in, out): the backward pass's product
        self.bias = None if linear.bias is None else linear.bias.detach()

    @staticmethod
    def product(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])
        if not flat.is_contiguous():
            flat = flat.contiguous()
        out = torch.ops.mkldnn._linear_pointwise(flat, weight, bias, "none", [], "")
        return out.view(*x.shape[:-1], weight.shape[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.float32 or x.shape[-1] != self.weight.shape[1]:
            return self.linear(x)
        if torch.is_grad_enabled() and x.requires_grad:
            return _OneDNNLinearFunction.apply(x, self)
        return self.product(x, self.weight, self.bias)


def _fp32_products_are_exact() -> bool:
    """Whether PyTorch computes fp32 matrix products in fp32 (no TF32/BF16 setting in force)."""
    if torch.get_float32_matmul_precision() != "highest":
        return False
    matmul = getattr(getattr(torch.backends, "mkldnn", None), "matmul", None)
    return getattr(matmul, "fp32_precision", "none") in ("none", "ieee")


@functools.lru_cache(maxsize=32)
def onednn_is_faster(in_features: int, out_features: int, threads: int, rows: int = 1024) -> bool:
    """Whether oneDNN computes this CPU's fp32 linear layer of that shape clearly faster than MKL.

    Measured once per shape and thread count, best of three of each (about 0.2 s for BERT-base's
    feed-forward layer on one thread, 0.02 s for the embedded model's): on some AMD CPUs oneDNN is about
    twice as fast; on Intel's, where MKL takes its AVX-512 path, the two are within a few percent in
    large products (so a busy machine may tip the choice either way, at no cost worth measuring) and
    MKL is faster in small ones.

    Args:
        in_features: The layer's input size.
        out_features: Its output size.
        threads: torch's thread count (the products run on it).
        rows: Rows of the timed product.

    Returns:
        True if oneDNN took at most 90 % of MKL's time.
    """
    import time

    weight, x = torch.randn(out_features, in_features), torch.randn(rows, in_features)
    sides = {
        "mkl": lambda: torch.nn.functional.linear(x, weight),
        "onednn": lambda: torch.ops.mkldnn._linear_pointwise(x, weight, None, "none", [], ""),
    }
    best = dict.fromkeys(sides, float("inf"))
    with torch.no_grad():
        for _ in range(3):
            for name, product in sides.items():
                started = time.perf_counter()
                product()
                best[name] = min(best[name], time.perf_counter() - started)
    logger.debug(
        "linear %dx%d on %d threads: MKL %.2f ms, oneDNN %.2f ms",
        in_features,
        out_features,
        threads,
        1e3 * best["mkl"],
        1e3 * best["onednn"],
    )
    return best["onednn"] <= 0.9 * best["mkl"]


def _onednn_linear(model) -> Callable[[], None] | None:
    if not (
        hasattr(torch.ops.mkldnn, "_linear_pointwise")
        and torch.backends.mkldnn.is_available()
        and _fp32_products_are_exact()
    ):
        return None
    linears = [m for m in model.modules() if type(m) is torch.nn.Linear and m.weight.dtype == torch.float32]
    if not linears:
        return None
    widest = max(linears, key=lambda m: m.weight.numel())
    if not onednn_is_faster(widest.in_features, widest.out_features, torch.get_num_threads()):
        return None
    return _swap_children(
        model,
        lambda child: (
            type(child) is torch.nn.Linear and child.weight.dtype == torch.float32 and child.weight.device.type == "cpu"
        ),
        _OneDNNLinear,
    )


def _swap_children(
    model, chosen: Callable[[torch.nn.Module], bool], wrap: Callable[[torch.nn.Module], torch.nn.Module]
) -> Callable[[], None] | None:
    """Replace every ``chosen`` submodule by ``wrap(submodule)``; return how to put them back (``None``: none found)."""
    swapped = [
        (parent, name, child) for parent in model.modules() for name, child in parent.named_children() if chosen(child)
    ]
    if not swapped:
        return None
    for parent, name, child in swapped:
        setattr(parent, name, wrap(child))

    def undo() -> None:
        for parent, name, child in swapped:
            setattr(parent, name, child)

    return undo
