"""Input checks used at every public boundary of ``course_lib``.

Two kinds of helper, in the spirit of scikit-learn's ``check_array`` and ``check_scalar``:
:func:`check_array` for arrays, and :func:`check_integer` / :func:`check_pair` /
:func:`check_size` / :func:`check_positive` / :func:`check_choice` for single arguments.
Each raises an error that names the argument, what was expected and what was received, so
that a wrong shape, a NaN, a fractional count or a non-numeric value never travels on into a
silent wrong number (``TypeError`` for the wrong kind of value, ``ValueError`` for a value of
the right kind out of range).

Sizes and coordinates: one rule
-------------------------------
* An array or tensor **size** is ``(H, W)``, in the order of its shape: ``input_size``,
  ``heatmap_size``, ``output_size``, ``feature_size`` are all ``(height, width)``.
* Anything **geometric** is ``x`` before ``y``: a point ``(x, y)``, a box ``[x, y, w, h]``,
  a crop's ``scale`` ``(w, h)``, a stride ``(s_x, s_y)``.
* Where a reader could guess wrong, the parameter says which (``input_hw``, ``box_xywh``),
  and the error message of :func:`check_pair` repeats the order it expects.

Shape specs
-----------
:func:`check_array` turns the input into an array (NumPy, or leaves a torch tensor as it
is) and checks its shape against a spec.  Shape specs are tuples whose entries are

* an ``int``: that exact size;
* a ``str`` such as ``"N"`` or ``"K"``: any size, but the same letter must have the same
  size everywhere in one call to a public function (pass the same ``dims`` dict);
* ``None``: any size;
* ``...`` as the first entry: any number of leading dimensions (or none).

Example::

    dims = {}
    pred = check_array(pred, "pred", ("N", "K", 2), dims=dims)
    gt = check_array(gt, "gt", ("N", "K", 2), dims=dims)   # must match pred's N and K
"""

from __future__ import annotations

import numbers
import sys
from typing import Any

import numpy as np

ShapeSpec = tuple


def _is_tensor(value: Any) -> bool:
    # A tensor can only exist if torch is imported already: do not import it here (slow).
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def _format_spec(spec: ShapeSpec) -> str:
    parts = ["..." if s is Ellipsis else ("?" if s is None else str(s)) for s in spec]
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


def check_array(
    value: Any,
    name: str,
    shape: ShapeSpec | None = None,
    *,
    finite: bool = True,
    dims: dict[str, int] | None = None,
    dtype: Any = None,
    allow_torch: bool = False,
) -> Any:
    """Validate ``value`` and return it as an array.

    Args:
        value: array-like (list, NumPy array) or, with ``allow_torch=True``, a tensor.
        name: the argument's name, used in the error message.
        shape: shape spec (see the module docstring); ``None`` accepts any shape.
        finite: reject NaN and infinite values.
        dims: shared dict of named sizes, so that ``"N"`` in two arguments must agree.
        dtype: NumPy dtype to convert to (default: keep integer/float types, reject others).
        allow_torch: return torch tensors unchanged (checked, not converted).

    Raises:
        TypeError: non-numeric input, or a tensor where only arrays are accepted.
        ValueError: wrong shape, size mismatch between named dimensions, NaN or inf.
    """
    if _is_tensor(value):
        if not allow_torch:
            value = value.detach().cpu().numpy()
        else:
            array_shape = tuple(value.shape)
            _check_shape(array_shape, name, shape, dims)
            if finite and value.is_floating_point():
                import torch

                if not bool(torch.isfinite(value).all()):
                    raise ValueError(f"{name} contains NaN or infinite values")
            return value
    if value is None:
        raise TypeError(f"{name} must be an array, got None")
    try:
        array = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be numeric, got {type(value).__name__}: {error}") from None
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be numeric, got dtype {array.dtype}")
    if array.dtype.kind == "b":
        array = array.astype(np.int64)
    _check_shape(array.shape, name, shape, dims)
    if finite and array.dtype.kind == "f" and not np.isfinite(array).all():
        bad = np.argwhere(~np.isfinite(array))[0]
        raise ValueError(f"{name} contains NaN or infinite values (first at index {tuple(int(i) for i in bad)})")
    return array


def _check_shape(actual: tuple, name: str, spec: ShapeSpec | None, dims: dict | None) -> None:
    if spec is None:
        return
    spec = tuple(spec)
    if spec and spec[0] is Ellipsis:
        tail = spec[1:]
        if len(actual) < len(tail):
            raise ValueError(f"{name} must have shape {_format_spec(spec)}, got {tuple(actual)}")
        actual_tail = actual[len(actual) - len(tail):]
    else:
        tail, actual_tail = spec, actual
        if len(actual) != len(spec):
            raise ValueError(f"{name} must have shape {_format_spec(spec)}, got {tuple(actual)}")
    for expected, got in zip(tail, actual_tail):
        if expected is None:
            continue
        if isinstance(expected, str):
            if dims is not None:
                if expected in dims and dims[expected] != got:
                    raise ValueError(
                        f"{name} must have shape {_format_spec(spec)} with {expected}={dims[expected]} "
                        f"(from an earlier argument), got {tuple(actual)}"
                    )
                dims.setdefault(expected, got)
            continue
        if int(expected) != got:
            raise ValueError(f"{name} must have shape {_format_spec(spec)}, got {tuple(actual)}")


def check_visibility(
    value: Any, name: str, shape: ShapeSpec | None = None, *, dims: dict[str, int] | None = None
) -> np.ndarray:
    """COCO visibility flags as an integer array: every entry 0, 1 or 2 (booleans read as 0 / 1).

    0 is "not labelled", 1 "labelled but hidden", 2 "labelled and visible".  Any other value
    (a 7, a -1, a 0.5) is a mistake that ``v > 0`` would silently count as labelled, so it
    raises a ValueError naming the first such entry by its index.
    """
    flags = check_array(value, name, shape, dims=dims)
    bad = ~np.isin(flags, (0, 1, 2))
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name} must hold COCO visibility flags 0, 1 or 2 (or booleans), got {flags[where].item()!r} "
                         f"at index {where}")
    return flags.astype(np.int64)


def check_positive(value: float, name: str, *, allow_zero: bool = False) -> float:
    """Return ``float(value)`` if it is a finite number > 0 (or >= 0), else raise ValueError."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {value!r}") from None
    ok = number >= 0 if allow_zero else number > 0
    if not np.isfinite(number) or not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return number


def check_choice(value: Any, name: str, choices: tuple | list) -> Any:
    """Return ``value`` if it is one of ``choices``, else raise ValueError listing them."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def check_integer(value: Any, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """Return ``value`` as an ``int`` if it is a whole number in ``[minimum, maximum]``.

    Python and NumPy integers are accepted; ``bool``, floats (even ``2.0``: a count written
    as a float is usually a mistake) and strings are not.

    Raises:
        TypeError: not an integer (the message names ``name`` and what was received).
        ValueError: outside ``[minimum, maximum]``.
    """
    problem = _integer_problem(value, minimum, maximum)
    if problem is not None:
        raise problem(f"{name} must be {_integer_range(minimum, maximum)}, got {value!r} ({type(value).__name__})")
    return int(value)


def check_pair(
    value: Any, name: str, order: str, *, minimum: int | None = 1, maximum: int | None = None
) -> tuple[int, int]:
    """Return two integers from a pair, each a whole number in ``[minimum, maximum]``.

    ``order`` names the two entries in the error message, e.g. ``"(H, W)"`` for a size or
    ``"(min, max)"`` for a range, so that the message says which order is expected.

    Raises:
        TypeError: not a sequence of two entries, or an entry that is not an integer.
        ValueError: an entry outside ``[minimum, maximum]``.
    """
    message = f"{name} must be a pair {order} of {_integer_range(minimum, maximum, plural=True)}, got {value!r}"
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2:
        raise TypeError(message)
    problems = [_integer_problem(entry, minimum, maximum) for entry in value]
    for problem in (TypeError, ValueError):
        if problem in problems:
            raise problem(message)
    return int(value[0]), int(value[1])


def _integer_problem(value: Any, minimum: int | None, maximum: int | None) -> type[Exception] | None:
    """``TypeError`` if ``value`` is not an integer, ``ValueError`` if it is out of range, else None."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        return TypeError
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        return ValueError
    return None


def _integer_range(minimum: int | None, maximum: int | None, plural: bool = False) -> str:
    """What an integer check expects, in words: ``"a positive integer"``, ``"integers from 1 to 7"``..."""
    if maximum is not None:
        words = f"integer from {minimum} to {maximum}" if minimum is not None else f"integer <= {maximum}"
    else:
        words = {0: "non-negative integer", 1: "positive integer"}.get(minimum, "integer")
        if minimum is not None and minimum not in (0, 1):
            words = f"integer >= {minimum}"
    if plural:
        return words.replace("integer", "integers", 1)
    return ("an " if words[0] in "aeiou" else "a ") + words


def check_size(size: Any, name: str) -> tuple[int, int]:
    """An array size ``(H, W)``: two positive integers, in the order of the array's shape."""
    return check_pair(size, name, "(H, W)", minimum=1)
