"""The kernel's side of the channel: how the judge calls a student's function.

This module runs inside the student's sandboxed kernel, so nothing it does is trusted: the
judge treats whatever comes back as the output of the student's own code.  It only has to
be correct for an honest notebook.  For each call the judge writes a request file and runs
``serve(request, response)`` in the kernel; ``serve`` reads the request
(:mod:`course_lib.grading.channel`), calls the function the student defined (looked up by name
in the notebook's namespace, or a handle to an object an earlier call returned), and writes
the response: the result, or the error it raised, plus the arguments as they are after the
call (so the judge can tell a function that changed its inputs in place).

A result the channel cannot carry as data, such as the ``nn.Module`` a student's class makes,
stays in the kernel under a numbered handle; the judge gets a summary (class, parameter
count, weight names and shapes, child modules) and can call the object's methods by name.

:class:`ReferenceUnavailable` is what the course's own implementation of an exercise raises
while that exercise is graded: the grader's copy of the library has the body of each such
function replaced by ``raise ReferenceUnavailable(...)`` until the exercise has been judged,
when :func:`restore` puts the real code back.
"""

from __future__ import annotations

import inspect
import json
import sys
import traceback
from typing import Any

from course_lib.grading import channel

_HANDLES: dict[int, Any] = {}


class ReferenceUnavailable(BaseException):
    """Raised by the course's implementation of an exercise while that exercise is graded.

    A ``BaseException``, so that a student's ``except Exception`` does not hide it.
    """


def serve(request_path: str, response_path: str) -> None:
    """Answer one request of the judge (called in the kernel, see the module docstring)."""
    with open(request_path, encoding="utf-8") as file:
        request = json.load(file)
    response: dict[str, Any] = {"id": request.get("id")}
    try:
        response.update(_answer(request))
    except ReferenceUnavailable as called:
        response["reference"] = str(called.args[0]) if called.args else "?"
    except BaseException as error:  # the student's function failed: report it, whatever it was
        response["error"] = _describe_error(error)
    try:
        text = json.dumps(response, allow_nan=True, separators=(",", ":"))
    except (TypeError, ValueError) as error:  # e.g. an int with 10,000 digits
        text = json.dumps({"id": request.get("id"), "error": {
            "type": "UnsendableResult", "message": f"the result could not be sent to the grader: {error}"}})
    with open(response_path, "w", encoding="utf-8") as file:
        file.write(text)


def _answer(request: dict) -> dict:
    op = request.get("op")
    if op == "restore":
        restore(request["functions"])
        return {"ok": None}
    target = _target(request)
    if op == "describe":
        return {"ok": channel.encode(describe(target))}
    args = list(channel.decode(request.get("args", []), allow_code=True))
    kwargs = channel.decode(request.get("kwargs", {"__dict__": []}), allow_code=True)
    method = request.get("method")
    function = getattr(target, method) if method else target
    result = function(*args, **kwargs)
    answer: dict[str, Any] = {}
    if request.get("gradients"):  # backpropagate here; the gradients of the inputs go back as data
        from course_lib.grading.checks import tensor_leaves

        result.backward()
        answer["gradients"] = channel.encode([leaf.grad for leaf in tensor_leaves([args, kwargs])])
    answer.update(args=_encode_after(args), kwargs=_encode_after(kwargs))
    encoded = channel.encode(result)
    if isinstance(encoded, dict) and "__object__" in encoded and _is_module(result):
        number = len(_HANDLES) + 1
        _HANDLES[number] = result
        answer["handle"] = {"id": number, "summary": channel.encode(describe(result))}
    else:
        answer["ok"] = encoded
    return answer


def _target(request: dict) -> Any:
    target = request.get("target", {})
    if "handle" in target:
        return _HANDLES[int(target["handle"])]
    namespace = _user_namespace()
    name = str(target.get("name"))
    if name not in namespace:
        raise NameError(f"name '{name}' is not defined in the notebook: did its cell run without errors?")
    return namespace[name]


def _user_namespace() -> dict:
    from IPython import get_ipython

    shell = get_ipython()
    return shell.user_ns if shell is not None else vars(sys.modules["__main__"])


def _encode_after(values: Any) -> Any:
    """The arguments after the call, for the in-place check; modules are left out (``None``)."""
    if isinstance(values, list):
        return [None if _is_module(v) else _safe_encode(v) for v in values]
    return channel.encode({k: None if _is_module(v) else v for k, v in values.items()})


def _safe_encode(value: Any) -> Any:
    try:
        return channel.encode(value)
    except channel.ChannelError:
        return None


def _is_module(value: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.nn.Module)


def describe(obj: Any) -> dict:
    """What the judge may know of an object it cannot receive: its class, and for a module its
    parameter count, weight names and shapes, children and every submodule's class."""
    summary: dict[str, Any] = {"class": _qualified(type(obj)), "is_module": _is_module(obj)}
    if summary["is_module"]:
        summary["parameters"] = int(sum(p.numel() for p in obj.parameters()))
        summary["state"] = {key: list(value.shape) for key, value in obj.state_dict().items()}
        summary["children"] = {name: _qualified(type(child)) for name, child in obj.named_children()}
        summary["modules"] = sorted({_qualified(type(module)) for module in obj.modules()})
        summary["classes"] = sorted({_qualified(kind) for module in obj.modules() for kind in type(module).__mro__})
    summary["attributes"] = sorted(name for name in dir(obj) if not name.startswith("__"))[:2000]
    try:
        summary["parameters_of"] = [str(name) for name in inspect.signature(obj).parameters][:50]
    except (TypeError, ValueError):  # not callable, or a builtin without a signature
        pass
    return summary


def _qualified(kind: type) -> str:
    return f"{kind.__module__}.{kind.__qualname__}"


def _describe_error(error: BaseException) -> dict:
    lines = traceback.format_exception(type(error), error, error.__traceback__)
    return {"type": type(error).__name__, "message": str(error)[:4000], "traceback": "".join(lines)[-4000:]}


def restore(functions: list) -> None:
    """Put back the real code of course functions that were replaced while their exercise was
    graded: ``functions`` holds ``[module, qualified name, source]`` triples."""
    import importlib
    import textwrap

    for module_name, qualname, source in functions:
        module = importlib.import_module(module_name)
        owner: Any = module
        *path, name = qualname.split(".")
        for part in path:
            owner = getattr(owner, part)
        stub = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
        text = textwrap.dedent(source)
        if "__class__" in stub.__code__.co_freevars:  # zero-argument super(): compile inside a class
            text = "class _Restored:\n" + textwrap.indent(text, "    ")
        namespace: dict[str, Any] = {}
        exec(compile(text, f"<{module_name}.{qualname}>", "exec"), vars(module), namespace)
        real = vars(namespace["_Restored"])[name] if "_Restored" in namespace else namespace[name]
        stub.__code__ = real.__code__
        stub.__defaults__, stub.__kwdefaults__ = real.__defaults__, real.__kwdefaults__
