"""Input validation shared by builders, transforms and layers.

Every check raises a ``ValueError`` (or ``IndexError`` for out-of-range
indices) that names the argument, the value received and the fix.
"""
from numbers import Integral
from typing import Iterable, Optional, Sequence, Union

import torch
from torch import Tensor

from ._cache import tensor_cache
from ._torch import autocast_on, compiling

SizeLike = Union[int, Sequence[int], Tensor]


def check_size_or_lazy(value, name: str) -> int:
    """A size ``>= 1``, or ``-1``: lazy, inferred from the first input as
    PyG's :class:`~torch_geometric.nn.dense.linear.Linear` does."""
    if isinstance(value, int) and not isinstance(value, bool) and value == -1:
        return -1
    return check_int(value, name, 1)


def check_choice(value, options: Iterable, name: str):
    """Raise ``ValueError`` unless ``value`` is one of ``options``."""
    options = list(options)
    if value not in options:
        raise ValueError(f"Unknown {name}={value!r}; expected one of "
                         f"{', '.join(repr(o) for o in options)}")
    return value


def check_int(value, name: str, minimum: Optional[int] = None) -> int:
    """Return ``value`` as an ``int`` or raise if it is not an integer
    ``>= minimum``."""
    if isinstance(value, Tensor) and value.numel() == 1 and not (
            value.is_floating_point() or value.is_complex()):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ValueError(f"'{name}' must be an integer (got {value!r})")
    if minimum is not None and value < minimum:
        raise ValueError(f"'{name}' must be >= {minimum} (got {value})")
    return int(value)


def check_sizes(sizes: SizeLike, name: str = 'sizes') -> Tensor:
    """Per-graph sizes as a 1-D long tensor.

    ``sizes`` is an int (one graph) or a 1-D sequence/tensor of
    non-negative integers (one entry per graph of the batch).
    """
    if isinstance(sizes, Integral) and not isinstance(sizes, bool):
        sizes = [sizes]
    if isinstance(sizes, Tensor):
        if sizes.dim() == 0:
            sizes = sizes.view(1)
        if sizes.dim() != 1 or sizes.is_floating_point() or sizes.is_complex() \
                or sizes.dtype == torch.bool:
            raise ValueError(f"'{name}' must be an int or a 1-D integer "
                             f"tensor (got dtype={sizes.dtype}, "
                             f"shape={tuple(sizes.shape)})")
        out = sizes.to(torch.long).cpu()
    else:
        if isinstance(sizes, (str, bytes)):
            raise ValueError(f"'{name}' must be an int or a 1-D sequence of "
                             f"integers (got the string {sizes!r})")
        try:
            values = list(sizes)
        except TypeError:
            raise ValueError(f"'{name}' must be an int or a 1-D sequence of "
                             f"ints (got {sizes!r})") from None
        for v in values:
            if isinstance(v, bool) or not isinstance(v, Integral):
                raise ValueError(f"'{name}' must contain integers only "
                                 f"(got {v!r} in {sizes!r})")
            if not -2**63 <= v < 2**63:
                raise ValueError(f"'{name}' entry {v} does not fit in a "
                                 f"64-bit integer; no graph that large can "
                                 f"be built")
        out = torch.tensor(values, dtype=torch.long).view(-1)
    if out.numel() > 0 and not _skip_values() and int(out.min()) < 0:
        raise ValueError(f"'{name}' must be non-negative (got {out.tolist()})")
    return out


def _skip_values() -> bool:
    """Whether value checks (index ranges) are skipped: while
    :func:`torch.compile` traces, reading a tensor's values on the host
    (``.item()``) breaks the graph (and ``fullgraph=True`` fails). Shapes
    and dtypes are still checked; the values are checked by any eager call,
    so run a batch eagerly first when the data is new."""
    return compiling()


def _cached_range(tensor: Tensor, key: str, compute):
    """``compute(tensor)`` (a tuple of ints, one host sync), remembered per
    tensor under the package's one validity rule (identity, in-place
    version, and the values of small CPU tensors: see
    :func:`pyg_relational._cache.tensor_cache`), so a graph reused
    batch after batch is read once, not once per layer and call."""
    cache = tensor_cache(tensor)
    out = cache.get(key)
    if out is None:
        out = compute(tensor)
        cache[key] = out
    return out


def _index_range(edge_index: Tensor):
    """``(min, max source, max target)`` of a non-empty ``[2, E]``."""
    return _cached_range(edge_index, 'index-range', lambda t: tuple(
        torch.stack([t.min(), t[0].max(), t[1].max()]).tolist()))


def _value_range(value: Tensor):
    """``(min, max)`` of a non-empty integer vector."""
    return _cached_range(value, 'value-range', lambda t: tuple(
        torch.stack([t.min(), t.max()]).tolist()))


def check_edge_index(edge_index: Tensor, num_src: Optional[int] = None,
                     num_dst: Optional[int] = None,
                     name: str = 'edge_index') -> Tensor:
    """Check that ``edge_index`` is a ``[2, E]`` long tensor whose sources are
    ``< num_src`` and targets ``< num_dst`` (when given)."""
    if not isinstance(edge_index, Tensor):
        raise ValueError(f"'{name}' must be a torch.Tensor of shape [2, E] "
                         f"(got {type(edge_index).__name__})")
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"'{name}' must have shape [2, E] (got "
                         f"{tuple(edge_index.shape)}); transpose a [E, 2] "
                         f"list with .t()")
    if edge_index.dtype != torch.long:
        raise ValueError(f"'{name}' must have dtype torch.long (got "
                         f"{edge_index.dtype}); convert with .long()")
    if edge_index.numel() == 0 or _skip_values():
        return edge_index  # (values: see _skip_values)
    low, top_src, top_dst = _index_range(edge_index)
    if low < 0:
        raise IndexError(f"'{name}' contains a negative node index "
                         f"({low})")
    for top, bound, role in ((top_src, num_src, 'source'),
                             (top_dst, num_dst, 'target')):
        if bound is not None:
            if top >= bound:
                raise IndexError(
                    f"'{name}' has {role} index {top} but there are only "
                    f"{bound} {role} nodes; pass the right node features or "
                    f"'size'")
    return edge_index


def check_edge_vector(value: Tensor, num_edges: int, name: str,
                      num_classes: Optional[int] = None) -> Tensor:
    """Check a per-edge integer vector such as ``edge_type``: shape ``[E]``,
    integer dtype and, when given, values in ``[0, num_classes)``."""
    if not isinstance(value, Tensor) or value.dim() != 1 \
            or value.is_floating_point() or value.dtype == torch.bool:
        shape = tuple(value.shape) if isinstance(value, Tensor) else value
        raise ValueError(f"'{name}' must be a 1-D integer tensor with one "
                         f"entry per edge (got {shape})")
    if value.numel() != num_edges:
        raise ValueError(f"'{name}' has {value.numel()} entries but there "
                         f"are {num_edges} edges")
    if num_classes is not None and value.numel() > 0 \
            and not _skip_values():
        lo, hi = _value_range(value)
        if lo < 0 or hi >= num_classes:
            raise IndexError(f"'{name}' values must lie in [0, {num_classes}) "
                             f"(got range [{lo}, {hi}])")
    return value


def check_features(x: Tensor, channels: int, name: str = 'x',
                   dim: int = -1) -> Tensor:
    """Check that ``x`` is a tensor with ``channels`` features along ``dim``
    (``channels=-1``: a lazy size, any number)."""
    if not isinstance(x, Tensor):
        raise ValueError(f"'{name}' must be a torch.Tensor (got "
                         f"{type(x).__name__})")
    if x.dim() == 0 or (channels != -1 and x.size(dim) != channels):
        raise ValueError(f"'{name}' must have {channels} features in "
                         f"dimension {dim} (got shape {tuple(x.shape)})")
    return x


def split_pair(value, name: str):
    """``(source, target)`` from one value (both sides) or a pair."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"'{name}' must be a tensor or a pair "
                             f"(source, target) (got {len(value)} items)")
        return value[0], value[1]
    return value, value


def check_size(size, allow_none: bool = False):
    """A ``size`` argument ``(N_src, N_dst)``: non-negative ints (or None
    with ``allow_none``, a side taken from the features)."""
    if not isinstance(size, (tuple, list)) or len(size) != 2 or not all(
            (allow_none and s is None) or (isinstance(s, int) and s >= 0)
            for s in size):
        what = 'non-negative ints or None' if allow_none \
            else 'non-negative ints'
        raise ValueError(f"'size' must be a pair (N_src, N_dst) of {what} "
                         f"(got {size!r})")
    return tuple(size)


def check_node_features(x: Tensor, channels: int, hint: str) -> Tensor:
    """Check that ``x`` is node features ``[N, channels]``; ``hint`` says
    how to turn other layouts into nodes."""
    if isinstance(x, Tensor) and x.dim() != 2:
        raise ValueError(f"'x' must be node features [N, {channels}] (got "
                         f"shape {tuple(x.shape)}); {hint}")
    return check_features(x, channels)


def check_optional_features(x: Optional[Tensor], channels: int, name: str,
                            option: str,
                            rows: Optional[int] = None) -> Optional[Tensor]:
    """``x`` (argument ``name``) is required with ``channels`` features when
    the constructor argument ``option`` is ``> 0`` (and with ``rows`` rows,
    when given), and must be :obj:`None` when it is ``0``."""
    if channels == 0:
        if x is not None:
            raise ValueError(f"'{name}' was given but {option}=0; build the "
                             f"layer with {option}={x.size(-1)}")
        return None
    if x is None:
        raise ValueError(f"'{name}' is None but {option}={channels}; pass "
                         f"a tensor [*, {channels}]")
    check_features(x, channels, name)
    if rows is not None and x.size(0) != rows:
        raise ValueError(f"'{name}' has {x.size(0)} rows but {rows} are "
                         f"expected (one per node)")
    return x


def check_dtypes(module: torch.nn.Module, **tensors: Tensor):
    """The floating inputs ``tensors`` (name -> tensor) must share one dtype,
    the dtype of ``module``'s parameters (outside autocast, which casts
    for the products itself); raise a :class:`ValueError` naming the
    argument and the fix otherwise."""
    named = [(n, t) for n, t in tensors.items()
             if isinstance(t, Tensor) and t.is_floating_point()]
    if not named:
        return
    first_name, first = named[0]
    for name, t in named[1:]:
        if t.dtype != first.dtype:
            raise ValueError(f"'{name}' has dtype {t.dtype} but "
                             f"'{first_name}' has {first.dtype}; convert "
                             f"one of them (e.g. {name}.to({first_name}."
                             f"dtype))")
    if autocast_on(first.device):
        return
    lazy = torch.nn.parameter.UninitializedParameter
    param = next((p for p in module.parameters()
                  if not isinstance(p, lazy) and p.is_floating_point()),
                 None)
    if param is not None and param.dtype != first.dtype:
        raise ValueError(f"'{first_name}' has dtype {first.dtype} but "
                         f"{type(module).__name__}'s parameters are "
                         f"{param.dtype}; convert the inputs (.to("
                         f"{param.dtype})) or the layer (.to({first.dtype}))")


def check_edge_weight(edge_weight, num_edges: int,
                      name: str = 'edge_weight'):
    """A 1-D floating tensor with one weight per edge."""
    if not isinstance(edge_weight, torch.Tensor) or edge_weight.dim() != 1 \
            or edge_weight.numel() != num_edges \
            or not edge_weight.is_floating_point():
        raise ValueError(
            f"'{name}' must be a 1-D floating tensor with one weight per "
            f"edge ({num_edges}); got "
            f"{getattr(edge_weight, 'shape', edge_weight)}"
            f"{'' if not isinstance(edge_weight, torch.Tensor) else ' ' + str(edge_weight.dtype)}")


def check_edge_attr(edge_attr: torch.Tensor, edge_dim: int, num_edges: int,
                    name: str = 'edge_attr') -> torch.Tensor:
    """Edge features ``[E, edge_dim]`` (``[E]`` read as ``[E, 1]``), one row
    per edge."""
    if edge_attr.dim() == 1:
        edge_attr = edge_attr.view(-1, 1)
    check_features(edge_attr, edge_dim, name)
    if edge_attr.size(0) != num_edges:
        raise ValueError(f"'{name}' has {edge_attr.size(0)} rows but there "
                         f"are {num_edges} edges")
    return edge_attr
