r"""The PyTorch internals the library relies on, each behind one guarded
helper with a public fallback, so that a torch release that moves or
removes one degrades a fast path (with its reason in ``why_not_faster``)
instead of breaking the layer. Tested on torch 2.13."""
from typing import Callable, Optional

import torch
from torch import Tensor

__all__ = ['compiling', 'autocast_on', 'flash_chosen', 'rnn_kernel',
           'onednn_lstm']


def compiling() -> bool:
    """Whether :func:`torch.compile` is tracing right now."""
    is_compiling = getattr(getattr(torch, 'compiler', None), 'is_compiling',
                           None)
    return bool(is_compiling()) if is_compiling is not None else False


def autocast_on(device) -> bool:
    """Whether autocast is on for ``device`` (a device or its type); False
    for device types without autocast (e.g. ``meta``, where
    :func:`torch.is_autocast_enabled` raises)."""
    kind = device if isinstance(device, str) else torch.device(device).type
    available = getattr(torch.amp, 'is_autocast_available', None)
    if available is not None and not available(kind):
        return False
    try:
        return bool(torch.is_autocast_enabled(kind))
    except RuntimeError:  # a device type without autocast
        return False


def flash_chosen(q: Tensor, k: Tensor, v: Tensor, mask: Optional[Tensor],
                 causal: bool, scale: float) -> bool:
    """Whether :func:`~torch.nn.functional.scaled_dot_product_attention`
    would run its flash kernel on these inputs (private
    ``aten._fused_sdp_choice``, 1 = flash). Fallback when the op is gone:
    False, and the caller runs the public SDPA (differentiable, perhaps
    slower)."""
    choice = getattr(torch.ops.aten, '_fused_sdp_choice', None)
    if choice is None:  # pragma: no cover - depends on the torch release
        return False
    try:
        return int(choice(q, k, v, mask, 0., causal, scale=scale)) == 1
    except (RuntimeError, TypeError):  # pragma: no cover - new signature
        return False


def rnn_kernel(name: str) -> Optional[Callable]:
    """PyTorch's fused multi-layer RNN kernel ``name`` (``'lstm'``,
    ``'gru'``, ``'rnn_tanh'``, ``'rnn_relu'``; private ``torch._VF``, what
    ``nn.LSTM`` calls), or None when this torch has none: the layer then
    states it and takes its message path."""
    return getattr(getattr(torch, '_VF', None), name, None)


def _onednn_has(check: str) -> bool:
    try:  # absent from builds without oneDNN: nothing to work around there
        return bool(getattr(torch.ops.mkldnn, check)())
    except (AttributeError, RuntimeError):
        return True


# Whether oneDNN has an LSTM primitive in this dtype on this CPU (bf16 and
# fp16 need AVX-512 / AMX; on an AVX2-only CPU ``nn.LSTM`` under CPU autocast
# fails with "could not create a primitive descriptor").
_ONEDNN_LSTM = {torch.bfloat16: _onednn_has('_is_mkldnn_bf16_supported'),
                torch.float16: _onednn_has('_is_mkldnn_fp16_supported')}


def onednn_lstm(dtype: torch.dtype) -> bool:
    """Whether PyTorch's CPU LSTM kernel runs in ``dtype`` under autocast
    here (False: this CPU's oneDNN has no LSTM primitive for it)."""
    return _ONEDNN_LSTM.get(dtype, True)


def plain_tensor(t):
    """``t`` as a plain :class:`torch.Tensor` (PyG's ``EdgeIndex`` keeps its
    subclass through ``as_subclass``; its ``as_tensor()`` does not)."""
    if type(t) is torch.Tensor:
        return t
    as_tensor = getattr(t, 'as_tensor', None)
    return as_tensor() if callable(as_tensor) else t.as_subclass(torch.Tensor)
