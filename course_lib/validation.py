"""Input checks used at every public boundary of ``course_lib``.

One helper, :func:`check_array`, in the spirit of scikit-learn's ``check_array``: it
turns the input into an array (NumPy, or leaves a torch tensor as it is), checks its
shape against a spec, and raises an error that names the argument, what was expected
and what was received.  A wrong shape, a NaN or a non-numeric value never travels on
into a silent wrong number.

Shape specs are tuples whose entries are

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


def check_size(size: Any, name: str) -> tuple[int, int]:
    """Return ``(H, W)`` as two positive ints, or raise ValueError naming ``name``.

    Sizes are always ``(H, W)`` in the course, like tensor shapes.
    """
    try:
        height, width = size
        ok = all(float(s) == int(s) and int(s) > 0 for s in (height, width))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{name} must be (H, W) with two positive integers, got {size!r}")
    return int(height), int(width)
