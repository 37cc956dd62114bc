"""The narrow channel between the judge and a student's kernel: plain data as JSON, never pickles.

The judge (a trusted process) calls a student's function that lives in a sandboxed kernel.
Everything that crosses between the two is written with :func:`encode` and read back with
:func:`decode`:

==========================  ======================================================================
value                       on the wire
==========================  ======================================================================
``None``, bool, int,        JSON (ints up to 4300 digits; NaN and infinities as JSON's extensions)
float, str
list                        JSON array
tuple, dict                 ``{"__tuple__": [...]}``, ``{"__dict__": [[key, value], ...]}``
NumPy array or scalar       ``{"__ndarray__": {"dtype", "shape", "data": base64}}`` (``"__npscalar__"``)
torch tensor                ``{"__tensor__": {"dtype", "shape", "data", "requires_grad"}}``
``torch.nn.Module``         ``{"__module__": {"class", "attributes", "parameters", "buffers",
(judge -> kernel only)      "children", "training"}}``: rebuilt in the kernel from the kernel's own
                            classes (``torch.nn`` and the course library only)
function (judge -> kernel   ``{"__function__": "package.module:qualified.name"}``: imported by name
only)                       in the kernel (``course_lib`` and the course's check modules only)
anything else (kernel ->    ``{"__object__": {"type", "repr"}}``: the judge sees an
judge)                      :class:`UnreadableObject` that every check rejects with a clear message
==========================  ======================================================================

Reading is defensive, because one side is the student's: :func:`decode` accepts only these
forms, checks that every array's bytes fit its dtype and shape, allows only numeric dtypes,
and refuses data deeper than :data:`MAX_DEPTH`, with more than :data:`MAX_ITEMS` values, or
more bytes than the caller allows.  Modules and functions are refused unless the caller says
it trusts the sender (only the kernel side does: the judge is trusted).
"""

from __future__ import annotations

import base64
import importlib
import json
import math
import sys
from typing import Any

import numpy as np

MAX_DEPTH = 64
MAX_ITEMS = 64_000_000
MAX_MESSAGE_BYTES = 256 * 2**20

# dtypes that may cross: numbers and booleans only (no objects, no strings, no structured records)
NUMPY_DTYPES = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                "float16", "float32", "float64", "complex64", "complex128")
TORCH_DTYPES = ("bool", "uint8", "int8", "int16", "int32", "int64", "float16", "bfloat16", "float32",
                "float64", "complex64", "complex128")
# where a module's class or a function may come from, when the kernel rebuilds one
TRUSTED_MODULE_PREFIXES = ("torch.nn.", "course_lib.")


class ChannelError(ValueError):
    """Data on the channel is malformed, too big, or of a kind this side does not accept."""


class UnreadableObject:
    """What the judge gets for a result the channel cannot carry (a generator, a custom object...).

    Every check rejects it, with its type in the message: return numbers, lists, tuples, dicts,
    NumPy arrays or tensors.
    """

    def __init__(self, type_name: str, text: str) -> None:
        self.type_name, self.text = type_name, text

    def __repr__(self) -> str:
        return f"<an object of type {self.type_name} that the grader cannot read: {self.text}>"


# -- encoding ----------------------------------------------------------------------------------------

def encode(value: Any, *, allow_code: bool = False) -> Any:
    """``value`` as JSON-ready plain data (see the module docstring).

    ``allow_code``: modules and functions may be sent by name and weights (judge -> kernel);
    otherwise (kernel -> judge) any object the table does not list becomes ``__object__``.
    """
    return _encode(value, allow_code, 0)


def dumps(value: Any, *, allow_code: bool = False) -> str:
    """JSON text of ``encode(value)``."""
    return json.dumps(encode(value, allow_code=allow_code), allow_nan=True, separators=(",", ":"))


def _encode(value: Any, allow_code: bool, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise ChannelError(f"the value is nested more than {MAX_DEPTH} levels deep")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)) and type(value) in (int, float):
        return value
    if isinstance(value, (int, float)):  # a subclass (an IntEnum, ...): send its plain value
        return int(value) if isinstance(value, int) else float(value)
    if isinstance(value, list):
        return [_encode(item, allow_code, depth + 1) for item in value]
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(item, allow_code, depth + 1) for item in value]}
    if isinstance(value, dict):
        return {"__dict__": [[_encode(k, allow_code, depth + 1), _encode(v, allow_code, depth + 1)]
                             for k, v in value.items()]}
    if isinstance(value, np.ndarray):
        return {"__ndarray__": _array_fields(value)}
    if isinstance(value, np.generic) and value.dtype.name in NUMPY_DTYPES:
        return {"__npscalar__": _array_fields(np.asarray(value))}
    torch = sys.modules.get("torch")
    if torch is not None:
        if isinstance(value, torch.Tensor):
            return {"__tensor__": _tensor_fields(value, torch)}
        if isinstance(value, torch.Size):
            return {"__tuple__": [int(size) for size in value]}
        if allow_code and isinstance(value, torch.nn.Module):
            return {"__module__": _module_fields(value, depth, torch)}
    if allow_code and callable(value) and hasattr(value, "__qualname__") and hasattr(value, "__module__"):
        return {"__function__": _function_name(value)}
    text = repr(value) if len(type(value).__qualname__) < 200 else "..."
    return {"__object__": {"type": _type_name(value), "repr": text[:200]}}


def _array_fields(array: np.ndarray) -> dict:
    if array.dtype.name not in NUMPY_DTYPES:
        raise ChannelError(f"arrays of dtype {array.dtype} cannot be sent; use numbers or booleans")
    array = np.array(array, order="C", copy=not array.flags.c_contiguous)  # (ascontiguousarray makes 0-d 1-d)
    return {"dtype": array.dtype.name, "shape": list(array.shape), "data": base64.b64encode(array.tobytes()).decode()}


def _tensor_fields(tensor: Any, torch: Any) -> dict:
    name = str(tensor.dtype).removeprefix("torch.")
    if name not in TORCH_DTYPES:
        raise ChannelError(f"tensors of dtype {tensor.dtype} cannot be sent")
    data = tensor.detach().cpu().contiguous()
    if name == "bfloat16":  # NumPy has no bfloat16: send the exact float32 values
        data = data.float()
    fields = _array_fields(data.numpy())
    fields.update(dtype=name, requires_grad=bool(tensor.requires_grad))
    return fields


def _module_fields(module: Any, depth: int, torch: Any) -> dict:
    """A module as its class, its plain attributes, its weights and its children (recursively)."""
    base = set(vars(torch.nn.Module()))
    attributes = {}
    for key, item in vars(module).items():
        if key in base or key.startswith("__"):
            continue  # nn.Module's own bookkeeping, and per-instance dunders such as __deepcopy__
        attributes[key] = _encode(item, False, depth + 1)
        if _has_object(attributes[key]):
            raise ChannelError(f"{type(module).__name__}.{key} ({type(item).__name__}) cannot be sent")
    return {
        "class": _function_name(type(module)),
        "attributes": attributes,
        "parameters": {k: None if p is None else {"__tensor__": _tensor_fields(p, torch)}
                       for k, p in module._parameters.items()},
        "buffers": {k: None if b is None else {"__tensor__": _tensor_fields(b, torch)}
                    for k, b in module._buffers.items()},
        "persistent": sorted(set(module._buffers) - set(module._non_persistent_buffers_set)),
        "children": {k: None if c is None else {"__module__": _module_fields(c, depth + 1, torch)}
                     for k, c in module._modules.items()},
        "training": bool(module.training),
    }


def _has_object(data: Any) -> bool:
    if isinstance(data, dict):
        return "__object__" in data or any(_has_object(v) for v in data.values())
    if isinstance(data, list):
        return any(_has_object(v) for v in data)
    return False


def _function_name(value: Any) -> str:
    module, qualname = getattr(value, "__module__", None), getattr(value, "__qualname__", "")
    if not module or "<" in qualname:
        raise ChannelError(f"{value!r} cannot be sent by name: only functions and classes defined at the top "
                           "level of an importable module (no lambdas, no nested functions)")
    return f"{module}:{qualname}"


def _type_name(value: Any) -> str:
    kind = type(value)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


# -- decoding ----------------------------------------------------------------------------------------

def loads(text: str | bytes, *, allow_code: bool = False, max_bytes: int = MAX_MESSAGE_BYTES) -> Any:
    """Read JSON text written by :func:`dumps` (see :func:`decode`)."""
    if len(text) > max_bytes:
        raise ChannelError(f"the message has {len(text):,} bytes, more than the {max_bytes:,} allowed")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise ChannelError(f"the message is not valid JSON: {str(error)[:200]}") from None
    return decode(data, allow_code=allow_code)


def decode(data: Any, *, allow_code: bool = False) -> Any:
    """The value that :func:`encode` turned into ``data``; :class:`ChannelError` for anything else.

    ``allow_code``: rebuild modules and functions by name (only in the kernel, which trusts the
    judge); otherwise they are refused.
    """
    budget = [MAX_ITEMS]
    return _decode(data, allow_code, 0, budget)


def _decode(data: Any, allow_code: bool, depth: int, budget: list[int]) -> Any:
    if depth > MAX_DEPTH:
        raise ChannelError(f"the message is nested more than {MAX_DEPTH} levels deep")
    budget[0] -= 1
    if budget[0] < 0:
        raise ChannelError(f"the message holds more than {MAX_ITEMS:,} values")
    if data is None or isinstance(data, (bool, str, float)):
        return data
    if isinstance(data, int):
        return data
    if isinstance(data, list):
        return [_decode(item, allow_code, depth + 1, budget) for item in data]
    if not isinstance(data, dict) or len(data) != 1:
        raise ChannelError("unexpected data in the message (a plain JSON object)")
    (tag, body), = data.items()
    if tag == "__tuple__" and isinstance(body, list):
        return tuple(_decode(item, allow_code, depth + 1, budget) for item in body)
    if tag == "__dict__" and isinstance(body, list):
        result = {}
        for pair in body:
            if not (isinstance(pair, list) and len(pair) == 2):
                raise ChannelError("a dict entry must be a [key, value] pair")
            key = _decode(pair[0], allow_code, depth + 1, budget)
            try:
                hash(key)
            except TypeError:
                raise ChannelError(f"a dict key of type {type(key).__name__} is not hashable") from None
            result[key] = _decode(pair[1], allow_code, depth + 1, budget)
        return result
    if tag == "__ndarray__":
        return _read_array(body, budget)
    if tag == "__npscalar__":
        array = _read_array(body, budget)
        if array.shape != ():
            raise ChannelError("a NumPy scalar must have shape ()")
        return array[()]
    if tag == "__tensor__":
        return _read_tensor(body, budget)
    if tag == "__object__" and isinstance(body, dict):
        return UnreadableObject(str(body.get("type", "?"))[:200], str(body.get("repr", ""))[:200])
    if tag in ("__module__", "__function__"):
        if not allow_code:
            raise ChannelError(f"{tag} is not accepted from this side of the channel")
        return _read_module(body, depth, budget) if tag == "__module__" else _import_by_name(body)
    raise ChannelError(f"unknown tag {str(tag)[:40]!r} in the message")


def _read_array(body: Any, budget: list[int]) -> np.ndarray:
    if not isinstance(body, dict) or not isinstance(body.get("data"), str):
        raise ChannelError("an array needs dtype, shape and data")
    dtype, shape = body.get("dtype"), body.get("shape")
    if dtype not in NUMPY_DTYPES:
        raise ChannelError(f"arrays of dtype {str(dtype)[:20]!r} are not accepted")
    if not isinstance(shape, list) or len(shape) > 32 or not all(isinstance(s, int) and 0 <= s for s in shape):
        raise ChannelError("an array's shape must be a list of at most 32 sizes >= 0")
    count = math.prod(shape)
    budget[0] -= count
    if budget[0] < 0:
        raise ChannelError(f"the message holds more than {MAX_ITEMS:,} values")
    try:
        raw = base64.b64decode(body["data"], validate=True)
    except ValueError:
        raise ChannelError("an array's data is not base64") from None
    if len(raw) != count * np.dtype(dtype).itemsize:
        raise ChannelError(f"an array of shape {tuple(shape)} and dtype {dtype} needs "
                           f"{count * np.dtype(dtype).itemsize} bytes, got {len(raw)}")
    return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()


def _read_tensor(body: Any, budget: list[int]) -> Any:
    import torch

    if not isinstance(body, dict) or body.get("dtype") not in TORCH_DTYPES:
        raise ChannelError("a tensor needs one of the dtypes " + ", ".join(TORCH_DTYPES))
    wire_dtype = "float32" if body["dtype"] == "bfloat16" else body["dtype"]
    array = _read_array(dict(body, dtype=wire_dtype), budget)
    tensor = torch.from_numpy(array).to(getattr(torch, body["dtype"]))
    if body.get("requires_grad") is True:
        tensor.requires_grad_(True)
    return tensor


def _import_by_name(name: Any) -> Any:
    if not isinstance(name, str) or ":" not in name:
        raise ChannelError("a name must look like 'package.module:qualified.name'")
    module_name, qualname = name.split(":", 1)
    if not module_name.startswith(TRUSTED_MODULE_PREFIXES):
        raise ChannelError(f"{module_name} is not a module the channel imports from")
    value: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        value = getattr(value, part)
    return value


def _read_module(body: Any, depth: int, budget: list[int]) -> Any:
    import torch

    if not isinstance(body, dict):
        raise ChannelError("a module must be an object")
    cls = _import_by_name(body.get("class"))
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        raise ChannelError(f"{body.get('class')} is not a torch.nn.Module class")
    module = cls.__new__(cls)
    torch.nn.Module.__init__(module)
    for key, value in body.get("attributes", {}).items():
        object.__setattr__(module, key, _decode(value, False, depth + 1, budget))
    for key, value in body.get("parameters", {}).items():
        tensor = _decode(value, False, depth + 1, budget)
        module.register_parameter(key, None if tensor is None else torch.nn.Parameter(tensor, requires_grad=True))
    persistent = set(body.get("persistent", []))
    for key, value in body.get("buffers", {}).items():
        module.register_buffer(key, _decode(value, False, depth + 1, budget), persistent=key in persistent)
    for key, value in body.get("children", {}).items():
        child = None if value is None else _decode(value, True, depth + 1, budget)
        module.add_module(key, child)
    object.__setattr__(module, "training", bool(body.get("training", True)))  # this module only
    return module
