r"""Argument checks shared by the simulators: each raises a ``ValueError``
naming the argument, the value received and what is allowed."""
import math
from numbers import Real
from typing import Optional, Tuple

from torch import Tensor


def check_real(value, name: str, low: Optional[float] = None,
               high: Optional[float] = None, low_open: bool = False,
               high_open: bool = False) -> float:
    r"""``value`` as a finite ``float`` within ``[low, high]`` (a bound is
    excluded when ``*_open``); anything else (NaN, inf, a string, a bool)
    raises a ``ValueError`` naming ``name``."""
    if isinstance(value, Tensor) and value.numel() == 1 and \
            not value.is_complex():
        value = value.item()
    ok = isinstance(value, Real) and not isinstance(value, bool)
    out = float(value) if ok else float('nan')
    if ok and math.isfinite(out):
        ok = ((low is None or (out > low if low_open else out >= low)) and
              (high is None or (out < high if high_open else out <= high)))
    else:
        ok = False
    if not ok:
        lo = '' if low is None else ('(' if low_open else '[') + f'{low:g}'
        hi = '' if high is None else f'{high:g}' + (')' if high_open else ']')
        if low is None and high is None:
            allowed = 'a finite number'
        elif high is None:
            allowed = f"a finite number {'>' if low_open else '>='} {low:g}"
        elif low is None:
            allowed = f"a finite number {'<' if high_open else '<='} {high:g}"
        else:
            allowed = f'a number in {lo}, {hi}'
        raise ValueError(f"'{name}' must be {allowed} (got {value!r})")
    return out


def check_positive(value, name: str) -> float:
    """A finite number ``> 0`` (time steps, sizes, radii)."""
    return check_real(value, name, 0., low_open=True)


def check_non_negative(value, name: str) -> float:
    """A finite number ``>= 0`` (strengths, spreads, damping)."""
    return check_real(value, name, 0.)


def check_probability(value, name: str) -> float:
    """A probability in ``[0, 1]``."""
    return check_real(value, name, 0., 1.)


def check_interval(value, name: str, low: float = 0.,
                   low_open: bool = True) -> Tuple[float, float]:
    """A pair ``(lo, hi)`` of finite numbers with ``low < lo <= hi``."""
    try:
        lo, hi = value
    except (TypeError, ValueError):
        raise ValueError(f"'{name}' must be a pair (low, high) (got "
                         f"{value!r})") from None
    lo = check_real(lo, f'{name}[0]', low, low_open=low_open)
    hi = check_real(hi, f'{name}[1]', lo)
    return lo, hi


def simulator_config(dataset, config: dict) -> dict:
    """The dataset's physics arguments with the simulator's defaults filled
    in; an argument the simulator does not take is a ``TypeError`` naming
    it (one check for every simulated dataset)."""
    import inspect
    simulator = type(dataset)._simulator
    params = inspect.signature(simulator).parameters
    unknown = sorted(set(config) - set(params))
    if unknown:
        raise TypeError(f"{type(dataset).__name__} got unknown arguments "
                        f"{unknown}; the physics arguments are those of "
                        f"{simulator.__name__}")
    full = {k: p.default for k, p in params.items()
            if p.default is not inspect.Parameter.empty}
    full.update(config)
    return full


def check_frames(num_steps: int, sample_every: int,
                 example: Tuple[int, int] = (5000, 100)):
    """``num_steps`` a multiple of ``sample_every`` giving at least two
    recorded frames (both positive ints)."""
    from .._checks import check_int
    check_int(sample_every, 'sample_every', 1)
    check_int(num_steps, 'num_steps', 1)
    if num_steps % sample_every != 0 or num_steps // sample_every < 2:
        raise ValueError(f"'num_steps' ({num_steps}) must be a multiple of "
                         f"'sample_every' ({sample_every}) and at least twice "
                         f"it, e.g. num_steps={example[0]}, "
                         f"sample_every={example[1]}")
