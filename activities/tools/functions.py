"""Python functions as tools: the argument model comes from the function's signature.

    def lookup_order(order_id: int, include_lines: bool = False) -> dict:
        '''Look up an order by its number.'''

becomes a tool whose arguments are validated by a pydantic model with `order_id: int` (required)
and `include_lines: bool = False`, whose description is the docstring's first paragraph, and
whose result is the return value (a string as is, anything else as JSON). Async functions are
awaited; sync ones run in a worker thread, so a slow one never blocks the worker's event loop.

A function raises :class:`~activities.tools.registry.ToolError` for a permanent failure (the
run's next context round hears about it); any other exception is transient and retried.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import typing
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, TypeAdapter, create_model

from activities.tools.catalog import Approval
from activities.tools.registry import Tool, ToolContext, ToolResult

MAX_DESCRIPTION_CHARS = 1000


class SignatureError(ValueError):
    """A function whose signature cannot describe a tool's arguments."""


def args_model_of(func: Callable[..., Any], model_name: str) -> type[BaseModel]:
    """The pydantic model of `func`'s keyword arguments, from its signature and type hints.

    Refused: *args/**kwargs and positional-only parameters (a tool is called with named
    arguments), a parameter without a type hint, and a hint pydantic cannot build a schema for.
    A parameter named `ctx` annotated `ToolContext` receives the call's context instead.
    """
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError) as exc:
        raise SignatureError(f"its signature cannot be read: {exc}") from None
    try:
        hints = typing.get_type_hints(func, include_extras=True)
    except Exception as exc:  # a forward reference that does not resolve, ...
        raise SignatureError(f"its type hints cannot be resolved: {exc}") from None
    fields: dict[str, Any] = {}
    for name, parameter in signature.parameters.items():
        if hints.get(name) is ToolContext:
            continue
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise SignatureError(f"*{name} / **{name} parameters are not supported")
        if parameter.kind is parameter.POSITIONAL_ONLY:
            raise SignatureError(f"parameter {name!r} is positional-only")
        if name not in hints:
            raise SignatureError(f"parameter {name!r} has no type hint")
        if name.startswith("_"):
            raise SignatureError(f"parameter {name!r} starts with an underscore")
        default = ... if parameter.default is parameter.empty else parameter.default
        fields[name] = (hints[name], default)
    try:
        model = create_model(model_name, __config__=ConfigDict(extra="forbid"), **fields)
        model.model_json_schema()
    except Exception as exc:
        raise SignatureError(f"its arguments have no JSON Schema: {exc}") from None
    return typing.cast(type[BaseModel], model)


def describe(func: Callable[..., Any]) -> str:
    """The docstring's first paragraph, on one line."""
    doc = inspect.getdoc(func) or ""
    first = doc.strip().split("\n\n", 1)[0]
    return " ".join(first.split())[:MAX_DESCRIPTION_CHARS]


def function_tool(
    name: str,
    func: Callable[..., Any],
    *,
    description: str | None = None,
    approval: Approval = Approval.NEVER,
) -> Tool:
    """A tool that calls `func` with validated keyword arguments."""
    if not callable(func):
        raise SignatureError(f"{func!r} is not callable")
    model = args_model_of(func, f"{name.replace('.', '_')}_args")
    wants_ctx = [
        key
        for key, hint in typing.get_type_hints(func).items()
        if hint is ToolContext and key in inspect.signature(func).parameters
    ]
    is_async = inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
        getattr(func, "__call__", None)  # noqa: B004 - a callable object with an async __call__
    )
    encoder = TypeAdapter(Any)

    async def _call(args: BaseModel, ctx: ToolContext) -> ToolResult:
        # Validated values, not their dump: a nested model stays a model, a date a date.
        kwargs = {key: getattr(args, key) for key in type(args).model_fields}
        kwargs.update(dict.fromkeys(wants_ctx, ctx))
        if is_async:
            value = await func(**kwargs)
        else:
            value = await asyncio.to_thread(functools.partial(func, **kwargs))
        if isinstance(value, str):
            return ToolResult(text=value, empty=not value.strip())
        text = encoder.dump_json(value).decode()
        return ToolResult(text=text, empty=value is None or value == [] or value == {})

    return Tool(
        name=name,
        description=description or describe(func) or name,
        args_model=model,
        func=_call,
        source="python",
        approval=approval,
    )
