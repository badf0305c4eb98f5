"""The `calculator` tool: arithmetic over a parsed AST, never ``eval``."""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Callable

from pydantic import BaseModel, Field

from activities.tools.registry import Tool, ToolContext, ToolError, ToolResult

MAX_EXPRESSION_CHARS = 200
# Bounds that keep one request from eating the worker's CPU or memory (2 ** 10 ** 9 ...).
MAX_EXPONENT = 1000
MAX_RESULT_DIGITS = 1000

_BINARY: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[float], float]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}

# A run of characters that can make up an arithmetic expression, and the proof that a run is one
# (a number, an operator, a number).
_CANDIDATE = re.compile(r"[-+(]*\d[\d.\s+\-*/%^()]*")
_HAS_OPERATOR = re.compile(r"\d\s*[)]*\s*(\*\*|[-+*/%^])\s*[-+(]*\s*\d")


class CalculatorArgs(BaseModel):
    expression: str = Field(
        min_length=1,
        max_length=MAX_EXPRESSION_CHARS,
        description="An arithmetic expression: numbers, + - * / // % ** ^ and parentheses.",
        examples=["17 * 23"],
    )


def find_expression(text: str) -> str | None:
    """The longest arithmetic expression in free text ("What is 17 * 23?" -> "17 * 23")."""
    best: str | None = None
    for match in _CANDIDATE.finditer(text):
        candidate = match.group(0).strip().rstrip(".")
        if _HAS_OPERATOR.search(candidate) and (best is None or len(candidate) > len(best)):
            best = candidate
    return best


def evaluate(expression: str) -> int | float:
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ToolError(f"expression is longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(expression.replace("^", "**"), mode="eval")
    except SyntaxError:
        raise ToolError(f"{expression!r} is not an arithmetic expression") from None
    value = _eval(tree.body)
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def _eval(node: ast.AST) -> int | float:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        if isinstance(node.value, bool):
            raise ToolError("booleans are not numbers here")
        if isinstance(node.value, float) and not math.isfinite(node.value):
            raise ToolError(f"{node.value!r} is not a finite number")
        return node.value
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise ToolError(f"exponent {right} is too large (limit {MAX_EXPONENT})")
        try:
            result = _BINARY[type(node.op)](left, right)
        except ZeroDivisionError:
            raise ToolError("division by zero") from None
        except OverflowError:
            raise ToolError("the result is too large") from None
        if isinstance(result, complex):
            raise ToolError("the result is not a real number")
        if isinstance(result, int) and result.bit_length() > MAX_RESULT_DIGITS * 3.33:
            raise ToolError("the result is too large")
        if isinstance(result, float) and not math.isfinite(result):
            raise ToolError("the result is too large")
        return result
    raise ToolError(f"unsupported element in expression: {type(node).__name__}")


def format_number(value: int | float) -> str:
    if isinstance(value, float):
        return f"{value:.10g}"
    return str(value)


async def _calculator(args: CalculatorArgs, ctx: ToolContext) -> ToolResult:
    value = evaluate(args.expression)
    return ToolResult(text=f"{args.expression.strip()} = {format_number(value)}")


def calculator_tool() -> Tool:
    return Tool(
        name="calculator",
        description="Evaluate an arithmetic expression exactly.",
        args_model=CalculatorArgs,
        func=_calculator,
    )
