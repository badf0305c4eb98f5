"""Routing that a rule decides, before (and instead of) asking the model.

Arithmetic goes to the calculator whatever the model would say: a small model misclassifies it
or never calls the tool, and a rule costs no tokens. The rules run inside the stage activities,
so their decisions are recorded like a model's and replays never re-run them.

- intent: a query that holds an arithmetic expression is a calculation;
- context: a calculation calls the calculator (when the run may use it) with that expression,
  and once the calculator has answered it, the context is sufficient.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from activities.models import (
    ContextInput,
    ContextOutput,
    Intent,
    IntentInput,
    IntentOutput,
    Sufficiency,
    ToolCall,
)
from activities.tools.calculator import find_expression

# An operator that makes arithmetic of a run of digits: a lone hyphen between digits is not
# enough ("2024-05-01", "555-0100" are no sums).
_REAL_OPERATOR = re.compile(r"\*|/|\+|%|\^|\s-\s|\)\s*-|-\s*\(")


def arithmetic(query: str) -> str | None:
    """The arithmetic expression the query asks about, if a rule can tell."""
    expression = find_expression(query)
    if expression is None or not _REAL_OPERATOR.search(expression):
        return None
    return expression


def rule_intent(req: IntentInput) -> IntentOutput | None:
    if arithmetic(req.query) is None:
        return None
    return IntentOutput(intent=Intent.CALCULATION)


def rule_context(req: ContextInput, offered: Collection[str]) -> ContextOutput | None:
    if req.intent is not Intent.CALCULATION or "calculator" not in offered:
        return None
    expression = arithmetic(req.query)
    if expression is None:
        return None
    calls = [t for t in req.tool_history if t.name == "calculator"]
    if not any(t.arguments.get("expression") == expression for t in calls):
        call = ToolCall(name="calculator", arguments={"expression": expression})
        return ContextOutput(sufficiency=Sufficiency.INSUFFICIENT, tool_calls=[call])
    if any(t.ok for t in calls) and not req.user_inputs:
        return ContextOutput(sufficiency=Sufficiency.SUFFICIENT)
    return None  # the calculator failed, or the user added something: the model judges
