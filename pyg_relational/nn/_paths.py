r"""Execution paths: one meaning, several ways to compute it.

Every layer with more than one way of computing its formula takes
``path='auto' | 'dense' | 'sparse' | 'message'`` and records the path that
ran in ``layer.last_path``:

* ``'dense'``: PyTorch's dense kernels on a graph whose structure is known
  (:mod:`pyg_relational.structure`): ``scaled_dot_product_attention`` on
  complete blocks, ``conv1d/conv2d`` on grids, fused RNN kernels on chains;
* ``'sparse'``: CSR products (SDDMM / SpMM) on any graph without repeated
  edges;
* ``'message'``: PyG's ``propagate``, the reference every other path is
  tested against, and the fall-back.

``'auto'`` takes the first available of dense, sparse, message, and takes
the message path whenever a faster path cannot keep the message path's
contract: PyG explain masks, propagate/message hooks, TorchScript tracing,
``torch.compile`` of a kernel that cannot be traced, and dtypes the kernel
lacks. A forced path that cannot run raises a :class:`ValueError` saying
why.
"""
from typing import Dict, Optional, Sequence

import torch

from .._checks import check_choice

__all__ = ['PATHS', 'check_path', 'message_only_reason', 'choose_path']

PATHS = ('auto', 'dense', 'sparse', 'message')

_HOOKS = ('_propagate_forward_pre_hooks', '_propagate_forward_hooks',
          '_message_forward_pre_hooks', '_message_forward_hooks',
          '_aggregate_forward_pre_hooks', '_aggregate_forward_hooks',
          '_message_and_aggregate_forward_pre_hooks',
          '_message_and_aggregate_forward_hooks',
          '_edge_update_forward_pre_hooks', '_edge_update_forward_hooks')


def check_path(path: str) -> str:
    """Validate a ``path=`` argument."""
    return check_choice(path, PATHS, 'path')


def compiling() -> bool:
    try:
        return bool(torch.compiler.is_compiling())
    except AttributeError:  # pragma: no cover - older torch
        return False


def message_only_reason(module) -> Optional[str]:
    """Why only the message path keeps the contract right now (or None):
    an explainer's edge mask, user hooks on propagate/message, tracing."""
    if getattr(module, '_explain', None) or \
            getattr(module, '_edge_mask', None) is not None:
        return 'an explainer is attached (PyG explain edge mask)'
    for name in _HOOKS:
        if getattr(module, name, None):
            return f'hooks are registered ({name.strip("_")})'
    if torch.jit.is_tracing() or torch.jit.is_scripting():
        return 'TorchScript tracing'
    return None


def sparse_dtype_ok(*tensors) -> bool:
    """CSR products exist for float32 / float64 only."""
    return all(t.dtype in (torch.float32, torch.float64) for t in tensors
               if t is not None)


def choose_path(module, requested: str,
                unavailable: Dict[str, Optional[str]],
                order: Sequence[str] = ('dense', 'sparse', 'message')) -> str:
    r"""The path to run.

    Args:
        module: the layer (its explain masks and hooks are looked at).
        requested (str): the layer's ``path`` (``'auto'`` or a path name).
        unavailable (dict): for every fast path the layer has, the reason
            it cannot run on this input (``None`` when it can). Paths the
            layer does not have are simply absent.
        order (sequence of str): preference of ``'auto'``.
    """
    reason = message_only_reason(module)
    if requested == 'auto':
        if reason is None:
            for path in order:
                if path in unavailable and unavailable[path] is None:
                    return path
        return 'message'
    if requested == 'message':
        return 'message'
    if requested not in unavailable:
        raise ValueError(f"{type(module).__name__} has no {requested!r} path "
                         f"(it has {sorted(unavailable) + ['message']}); use "
                         f"path='auto'")
    why = unavailable[requested] or reason
    if why is not None:
        raise ValueError(f"{type(module).__name__}(path={requested!r}) cannot "
                         f"run here: {why}; use path='auto' to fall back")
    return requested
