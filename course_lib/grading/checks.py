"""Building blocks for the exercise checks: calls, comparisons and messages that say what is wrong.

A chapter's check module (``course_lib/grading/chNN_<name>.py``) builds each check from these
pieces, so that a notebook's test cell is one line, ``check_normalize_to_box(normalize_to_box)``,
and a wrong answer gets a message a student can act on::

    visible_centroid(keypoints, visibility) returned the wrong values.
      expected: [12.5  3. ]
      got:      [ 3.  12.5]
      2 of 2 values differ (largest difference 9.5 at index (0,)).
    Hint: x and y look swapped: keypoints are (x, y) in that order ...

The pieces:

* :func:`call_student`: call the student's function on copies of the inputs; a stub that still
  raises ``NotImplementedError``, a crash, or an input changed in place becomes a clear message;
* :func:`check_type`, :func:`check_shape`, :func:`check_dtype`: friendly type / shape / dtype
  checks;
* :func:`check_close`: compare with the expected values; on a mismatch show both and add the
  hints of :func:`explain_mismatch`: the generic detectors (:func:`looks_like_swapped_xy`,
  :func:`looks_like_off_by_one`, sign flipped, constant factor) and the exercise's own
  ``mistakes``: wrong answers the check computed with the reference implementation, such as
  the answer that ignores visibility (:func:`all_visible` helps to make it);
* :func:`forbid_reference`: make sure the student's function does not simply call the course's
  own reference implementation;
* :func:`report_passed`: the line printed when everything passed.

Every failure raises :class:`CheckFailed` (an ``AssertionError``), so the notebook cell shows
the message and the grader counts the cell as failed.
"""

from __future__ import annotations

import copy
import functools
import inspect
import sys
import types
from typing import Any, Callable, Mapping

import numpy as np

HINT_SWAPPED_XY = ("x and y look swapped: keypoints are (x, y) in that order, x along the image columns "
                   "and y along the rows.")
HINT_OFF_BY_ONE = ("every wrong value is off by exactly one: check the pixel convention (pixel i has its "
                   "centre at i and covers [i - 0.5, i + 0.5]; a flip maps x to width - 1 - x) and where "
                   "counting starts.")
HINT_SIGN = "the values have the right size but the wrong sign."
HINT_IGNORED_VISIBILITY = ("it matches the answer in which every keypoint counts: keypoints with v = 0 "
                           "(not labelled) must be left out.")


class CheckFailed(AssertionError):
    """A check found a mistake; the message says what and, where it can, why."""


class ReferenceCalled(BaseException):
    """Raised inside a guarded call when the course's reference implementation runs.

    A ``BaseException`` so that a student's ``except Exception`` does not swallow it.
    """


def report_passed(what: str) -> None:
    """Print the line a student sees when all checks of ``what`` passed."""
    print(f"{what}: all checks passed.")


# -- calling the student's function ----------------------------------------------------------------

def call_student(fn: Callable, *args: Any, name: str | None = None, **kwargs: Any) -> Any:
    """Call ``fn(*args, **kwargs)`` on deep copies of the inputs and return its result.

    Raises:
        CheckFailed: ``fn`` is not callable, still raises ``NotImplementedError`` (the stub),
            raises any other exception (chained, so the student's traceback stays visible),
            or changed one of its inputs in place.
    """
    name = name or getattr(fn, "__name__", "your function")
    if not callable(fn):
        raise CheckFailed(f"{name} must be a function, got {type(fn).__name__}: {_short(fn)}")
    call_args, call_kwargs = copy.deepcopy(args), copy.deepcopy(kwargs)
    try:
        result = fn(*call_args, **call_kwargs)
    except NotImplementedError:
        raise CheckFailed(f"{name} is not written yet: replace `raise NotImplementedError()` with your code.") from None
    except CheckFailed:
        raise
    except Exception as error:
        raise CheckFailed(f"{name} raised {type(error).__name__}: {error}") from error
    for position, (before, after) in enumerate(zip(args, call_args)):
        if not _same(before, after):
            argument = _parameter_name(fn, position)
            raise CheckFailed(f"{name} changed its input {argument} in place; leave the inputs as they are and "
                              "return a new array (for example start from `x.copy()`).")
    for key, before in kwargs.items():
        if not _same(before, call_kwargs[key]):
            raise CheckFailed(f"{name} changed its input `{key}` in place; leave the inputs as they are and "
                              "return a new array.")
    return result


def _parameter_name(fn: Callable, position: int) -> str:
    try:
        parameters = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        parameters = []
    if position < len(parameters):
        return f"`{parameters[position]}`"
    return f"number {position + 1}"


def _same(a: Any, b: Any) -> bool:
    if _is_tensor(a) or isinstance(a, np.ndarray):
        a_array, b_array = _to_numpy(a), _to_numpy(b)
        if a_array.shape != b_array.shape:
            return False
        return bool(np.array_equal(a_array, b_array, equal_nan=a_array.dtype.kind == "f"))
    if _is_module(a) and _is_module(b):  # a module is unchanged when its weights and buffers are
        return type(a) is type(b) and _same(dict(a.state_dict()), dict(b.state_dict()))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    try:
        return bool(a == b)
    except Exception:  # objects without a usable ==: assume unchanged
        return True


# -- objects the student's code made ------------------------------------------------------------------

def describe_module(obj: Any) -> dict | None:
    """What a check may know of a module that the student's code made, or ``None`` if ``obj`` is
    not an ``nn.Module``: ``class``, ``classes`` (the class of every submodule and their bases,
    ``"module.Qualname"``), ``parameters`` (how many numbers), ``state`` (weight name -> shape),
    ``children`` and ``attributes`` (names).

    Works the same on a module made in this process and on one that stays in the student's
    kernel while a notebook is graded (the judge's ``RemoteModule``).
    """
    summary = getattr(obj, "remote_summary", None)
    if summary is None:
        from course_lib.grading.remote import describe

        summary = describe(obj)
    return summary if summary.get("is_module") else None


def gradients_through(fn: Callable, *args: Any) -> tuple[Any, list]:
    """Call ``fn(*args)``, backpropagate from its result (a scalar tensor) and return the result
    and the gradient of every tensor argument that requires one, in argument order with lists
    flattened (``None`` where no gradient arrived).

    For a function in the student's kernel the backward pass runs there and the gradients come
    back as data.
    """
    remote = inspect.unwrap(fn)
    if hasattr(remote, "call_with_gradients"):
        return remote.call_with_gradients(*args)
    result = fn(*args)
    result.backward()
    return result, [leaf.grad for leaf in tensor_leaves(args)]


def tensor_leaves(value: Any) -> list:
    """The tensors in ``value`` (nested lists, tuples, dicts) that require a gradient, in order."""
    if _is_tensor(value):
        return [value] if value.requires_grad and value.is_leaf else []
    if isinstance(value, (list, tuple)):
        return [leaf for item in value for leaf in tensor_leaves(item)]
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in tensor_leaves(item)]
    return []


def call_method(obj: Any, name: str, *args: Any, **kwargs: Any) -> Any:
    """``obj.name(*args, **kwargs)``, also for a module left in the student's kernel."""
    if hasattr(obj, "remote_summary"):
        return obj.call_method(name, *args, **kwargs)
    return getattr(obj, name)(*args, **kwargs)


# -- type, shape and dtype ----------------------------------------------------------------------------

def check_type(value: Any, expected: type | tuple[type, ...], what: str) -> None:
    """Raise CheckFailed unless ``value`` is an instance of ``expected`` (a type or tuple of types)."""
    if isinstance(value, expected):
        return
    names = " or ".join(_type_name(t) for t in (expected if isinstance(expected, tuple) else (expected,)))
    hint = " Did you forget `return`?" if value is None else ""
    raise CheckFailed(f"{what} must be of type {names}, got {_type_name(type(value))}.{hint}")


def check_shape(value: Any, expected: tuple[int | None, ...], what: str) -> None:
    """Raise CheckFailed unless the array's shape matches ``expected`` (``None``: any size)."""
    shape = tuple(np.shape(_to_numpy(value)))
    if len(shape) == len(expected) and all(e is None or e == s for e, s in zip(expected, shape)):
        return
    sizes = ["any" if e is None else str(e) for e in expected]
    wanted = "(" + ", ".join(sizes) + ("," if len(sizes) == 1 else "") + ")"
    message = f"{what} must have shape {wanted}, got {shape}."
    hint = _shape_hint(shape, expected)
    raise CheckFailed(message + (f"\nHint: {hint}" if hint else ""))


def _shape_hint(shape: tuple, expected: tuple) -> str:
    expected = tuple(expected)
    if None not in expected and len(shape) == len(expected):
        if shape == expected[::-1]:
            return "the axes are in reverse order (a transpose too many or too few?)."
        if len(shape) >= 2 and shape[:-2] + shape[-2:][::-1] == expected:
            return "the last two axes are swapped."
    if len(shape) == len(expected) - 1:
        return "one axis is missing: did a sum, mean or indexing drop a dimension you need to keep (keepdims=True)?"
    if len(shape) == len(expected) + 1 and 1 in shape:
        return "there is one axis too many (of size 1): squeeze it away."
    return ""


def check_dtype(value: Any, expected: Any, what: str) -> None:
    """Raise CheckFailed unless the values have the expected type.

    ``expected`` is ``"float"``, ``"integer"`` or ``"bool"`` (any width), or an exact NumPy or
    torch dtype.  Works for NumPy arrays, torch tensors and Python scalars.
    """
    dtype = _dtype_of(value)
    kinds = {"float": "f", "integer": "iu", "bool": "b"}
    if isinstance(expected, str):
        if expected not in kinds:
            raise ValueError(f"expected must be one of {list(kinds)} or a dtype, got {expected!r}")
        if _dtype_kind(dtype) in kinds[expected]:
            return
        wanted = {"float": "floating-point numbers", "integer": "integers", "bool": "booleans"}[expected]
        wanted_kind = kinds[expected]
    else:
        if _dtype_name(dtype) == _dtype_name(expected):
            return
        wanted = f"values of dtype {_dtype_name(expected)}"
        wanted_kind = _dtype_kind(expected)
    message = f"{what} must hold {wanted}, got {_dtype_name(dtype)}."
    if _dtype_kind(dtype) in "iu" and wanted_kind == "f":
        message += ("\nHint: integer arithmetic throws the fractions away: look for `//`, `astype(int)` or an "
                    "array made with an integer dtype.")
    raise CheckFailed(message)


def _dtype_of(value: Any) -> Any:
    return value.dtype if _is_tensor(value) else np.asarray(value).dtype


def _dtype_kind(dtype: Any) -> str:
    """NumPy's one-letter kind ('f', 'i', 'u', 'b', 'c') of a NumPy or torch dtype."""
    if _is_tensor_dtype(dtype):
        import torch

        if dtype == torch.bool:
            return "b"
        if dtype.is_complex:
            return "c"
        if dtype.is_floating_point:
            return "f"
        return "u" if dtype == torch.uint8 else "i"
    return np.dtype(dtype).kind


def _dtype_name(dtype: Any) -> str:
    if _is_tensor_dtype(dtype):
        return str(dtype).removeprefix("torch.")
    return np.dtype(dtype).name


# -- comparing values --------------------------------------------------------------------------------

def check_close(
    actual: Any,
    expected: Any,
    what: str,
    *,
    atol: float = 1e-6,
    rtol: float = 1e-6,
    mistakes: Mapping[str, Any] | None = None,
) -> None:
    """Raise CheckFailed unless ``actual`` equals ``expected`` within ``atol + rtol * |expected|``.

    Args:
        actual: the student's result (array, tensor, number, or a list of them).
        expected: the right answer (from the reference implementation or worked by hand).
        what: how to name the result in the message, e.g. ``"normalize_to_box(keypoints, box)"``.
        mistakes: ``{hint: wrong_answer}`` for this exercise's typical mistakes; when
            ``actual`` matches a wrong answer its hint is shown.

    The message shows both values, how many differ and by how much, and every hint that
    applies (:func:`explain_mismatch`).
    """
    if actual is None:
        raise CheckFailed(f"{what} returned None: did you forget `return`?")
    expected_array = _to_numpy(expected)
    try:
        actual_array = _to_numpy(actual)
    except (TypeError, ValueError):
        raise CheckFailed(f"{what} must give numbers, got {_type_name(type(actual))}: {_short(actual)}") from None
    if actual_array.dtype.kind not in "biuf":
        raise CheckFailed(f"{what} must give numbers, got {_type_name(type(actual))}: {_short(actual)}")
    if actual_array.shape != expected_array.shape:
        message = f"{what} must have shape {expected_array.shape}, got {actual_array.shape}."
        hint = _shape_hint(actual_array.shape, expected_array.shape)
        raise CheckFailed(message + (f"\nHint: {hint}" if hint else ""))
    close = np.isclose(actual_array.astype(float), expected_array.astype(float), atol=atol, rtol=rtol, equal_nan=True)
    if close.all():
        return
    lines = [
        f"{what} returned the wrong {'values' if expected_array.ndim else 'value'}.",
        f"  expected: {_format(expected_array, 12)}",
        f"  got:      {_format(actual_array, 12)}",
    ]
    if expected_array.ndim:
        difference = np.where(close, 0.0, np.abs(actual_array.astype(float) - expected_array.astype(float)))
        worst = np.unravel_index(np.argmax(np.where(np.isnan(difference), np.inf, difference)), difference.shape)
        lines.append(f"  {int((~close).sum())} of {close.size} values differ (largest difference "
                     f"{float(difference[worst]):.4g} at index {tuple(int(i) for i in worst)}).")
    hints = explain_mismatch(actual_array, expected_array, mistakes, atol=atol, rtol=rtol)
    lines += [f"Hint: {hint}" for hint in hints]
    raise CheckFailed("\n".join(lines))


def explain_mismatch(
    actual: Any,
    expected: Any,
    mistakes: Mapping[str, Any] | None = None,
    *,
    atol: float = 1e-6,
    rtol: float = 1e-6,
) -> list[str]:
    """The hints that explain how ``actual`` went wrong: the exercise's own ``mistakes`` first
    (``{hint: wrong_answer}``), then the generic detectors."""
    hints = [hint for hint, wrong in (mistakes or {}).items() if matches(actual, wrong, atol=atol, rtol=rtol)]
    if looks_like_swapped_xy(actual, expected, atol=atol, rtol=rtol):
        hints.append(HINT_SWAPPED_XY)
    if looks_like_off_by_one(actual, expected, atol=atol):
        hints.append(HINT_OFF_BY_ONE)
    if matches(-_to_numpy(actual).astype(float), expected, atol=atol, rtol=rtol) and np.any(_to_numpy(expected) != 0):
        hints.append(HINT_SIGN)
    factor = _constant_factor(actual, expected, atol=atol, rtol=rtol)
    if factor is not None:
        hints.append(f"every value is {factor:.4g} times the right one: a missing or extra scale "
                     "(a stride, a width or height, a factor of 2)?")
    return hints


def matches(actual: Any, candidate: Any, *, atol: float = 1e-6, rtol: float = 1e-6) -> bool:
    """True if ``actual`` has ``candidate``'s shape and equals it within the tolerances."""
    try:
        a, c = _to_numpy(actual).astype(float), _to_numpy(candidate).astype(float)
    except (TypeError, ValueError):
        return False
    return a.shape == c.shape and bool(np.allclose(a, c, atol=atol, rtol=rtol, equal_nan=True))


def looks_like_swapped_xy(actual: Any, expected: Any, *, atol: float = 1e-6, rtol: float = 1e-6) -> bool:
    """True if ``actual`` is ``expected`` with x and y exchanged on the last axis (of size 2)."""
    a, e = _to_numpy(actual), _to_numpy(expected)
    if a.shape != e.shape or a.ndim == 0 or a.shape[-1] != 2 or matches(e[..., ::-1], e, atol=atol, rtol=rtol):
        return False
    return matches(a[..., ::-1], e, atol=atol, rtol=rtol)


def looks_like_off_by_one(actual: Any, expected: Any, *, atol: float = 1e-6) -> bool:
    """True if every value that differs differs by exactly 1 (up to ``atol``)."""
    a, e = _to_numpy(actual).astype(float), _to_numpy(expected).astype(float)
    if a.shape != e.shape:
        return False
    difference = np.abs(a - e)
    wrong = difference > atol
    return bool(wrong.any()) and bool(np.all(np.abs(difference[wrong] - 1.0) <= max(atol, 1e-9)))


def _constant_factor(actual: Any, expected: Any, *, atol: float, rtol: float) -> float | None:
    a, e = _to_numpy(actual).astype(float), _to_numpy(expected).astype(float)
    if a.shape != e.shape or a.size < 2:
        return None
    nonzero = np.abs(e) > atol
    if not nonzero.any():
        return None
    ratios = a[nonzero] / e[nonzero]
    factor = float(np.median(ratios))
    if not np.isfinite(factor) or abs(factor) < 1e-12 or np.isclose(factor, 1.0) or np.isclose(factor, -1.0):
        return None
    return factor if matches(a, factor * e, atol=atol, rtol=rtol) else None


def all_visible(visibility: Any) -> np.ndarray:
    """Visibility flags with every keypoint marked visible (2): feed them to the reference
    implementation to get the answer of a student who ignores visibility."""
    return np.full_like(_to_numpy(visibility), 2)


# -- the reference implementation is off limits ------------------------------------------------------

def forbid_reference(student_fn: Callable, *reference_functions: Callable) -> Callable:
    """Return ``student_fn`` guarded so that calling any of ``reference_functions`` fails the check.

    While the guarded function runs, each reference function's ``__code__`` is swapped for code
    that raises :class:`ReferenceCalled`, so the call is caught however the student imported
    the reference (``from course_lib.geometry import normalize_to_box``, a module alias, a
    lambda or ``functools.partial`` around it).  The original code is put back in ``finally``.
    Also refuses a ``student_fn`` that *is* a reference function (or a copy of its code).

    Reference functions must be plain Python functions (no closures; pass the undecorated one).
    The checker computes its expected values outside the guarded call.

    Raises:
        CheckFailed: ``student_fn`` is a reference function (at once), or calls one (when called).
        TypeError: a reference is not a plain Python function.
    """
    name = getattr(student_fn, "__name__", "your function")
    references = [_plain_function(reference) for reference in reference_functions]
    qualified = {reference.__name__: f"{reference.__module__}.{reference.__qualname__}" for reference in references}
    for reference in references:
        if student_fn is reference or getattr(student_fn, "__code__", None) is reference.__code__:
            raise CheckFailed(f"{name} is the course's own {qualified[reference.__name__]}: the exercise is to "
                              "write this function yourself.")

    @functools.wraps(student_fn)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        originals = [reference.__code__ for reference in references]
        try:
            for reference in references:
                reference.__code__ = _TRIPWIRE_CODE.replace(co_name=reference.__name__)
            return student_fn(*args, **kwargs)
        except ReferenceCalled as called:
            called_name = qualified.get(called.args[0], called.args[0])
            raise CheckFailed(f"{name} calls the course's reference implementation {called_name}: the exercise "
                              "is to write it yourself, without it.") from None
        finally:
            for reference, code in zip(references, originals):
                reference.__code__ = code

    return guarded


def _tripwire(*args: Any, **kwargs: Any) -> None:
    # Runs *as* a reference function (its globals, its name): import what it needs by name.
    import sys as _sys

    from course_lib.grading.checks import ReferenceCalled as _ReferenceCalled

    raise _ReferenceCalled(_sys._getframe().f_code.co_name)


_TRIPWIRE_CODE = _tripwire.__code__


def _plain_function(reference: Callable) -> types.FunctionType:
    function = getattr(reference, "__func__", reference)  # a bound method -> its function
    if not isinstance(function, types.FunctionType):
        raise TypeError(f"reference_functions must be plain Python functions, got {_type_name(type(reference))}")
    if function.__code__.co_freevars:
        raise TypeError(f"reference function {function.__qualname__} has a closure; pass the undecorated function")
    return function


# -- small helpers ------------------------------------------------------------------------------------

def _is_tensor(value: Any) -> bool:
    torch = sys.modules.get("torch")  # a tensor can only exist if torch is already imported
    return torch is not None and isinstance(value, torch.Tensor)


def _is_module(value: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.nn.Module)


def _is_tensor_dtype(value: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.dtype)


def _to_numpy(value: Any) -> np.ndarray:
    if _is_tensor(value):
        return value.detach().cpu().numpy()
    if isinstance(value, (list, tuple)) and any(_is_tensor(item) for item in value):
        return np.asarray([_to_numpy(item) for item in value])
    array = np.asarray(value)
    if array.dtype == object:
        raise TypeError(f"cannot read {_type_name(type(value))} as an array of numbers")
    return array


def _format(array: np.ndarray, indent: int) -> str:
    text = np.array2string(np.asarray(array), precision=4, suppress_small=True, threshold=24, edgeitems=3,
                           max_line_width=88)
    return text.replace("\n", "\n" + " " * indent)


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _type_name(kind: type) -> str:
    module = getattr(kind, "__module__", "builtins")
    if module == "builtins":
        return kind.__name__
    return f"{module.split('.')[0]}.{kind.__name__}"
