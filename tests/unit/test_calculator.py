import pytest

from activities.tools.calculator import evaluate, find_expression, format_number
from activities.tools.registry import ToolError


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("17 * 23", 391),
        ("2 + 3 * 4", 14),
        ("(2 + 3) * 4", 20),
        ("7 / 2", 3.5),
        ("7 // 2", 3),
        ("-3 ** 2", -9),
        ("2 ^ 10", 1024),
        ("10 % 4", 2),
        ("1.5 + 1.5", 3),
    ],
)
def test_evaluates_arithmetic(expression: str, expected: float) -> None:
    assert evaluate(expression) == expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("1 / 0", "division by zero"),
        ("__import__('os').system('true')", "unsupported"),
        ("x + 1", "unsupported"),
        ("2 ** 100000", "too large"),
        ("9 ** 999 ** 2", "too large"),
        ("1 +", "not an arithmetic expression"),
        ("1" * 300, "longer than"),
    ],
)
def test_rejects_what_it_must_not_compute(expression: str, message: str) -> None:
    with pytest.raises(ToolError, match=message):
        evaluate(expression)


@pytest.mark.parametrize(
    ("text", "expression"),
    [
        ("What is 17 * 23?", "17 * 23"),
        ("compute (1 + 2) * 3 please", "(1 + 2) * 3"),
        ("I have 3 apples", None),
        ("In 2024 and 2025", None),
        ("what is 2^8", "2^8"),
    ],
)
def test_finds_the_expression_in_free_text(text: str, expression: str | None) -> None:
    assert find_expression(text) == expression


def test_formats_numbers_without_noise() -> None:
    assert format_number(391) == "391"
    assert format_number(0.1 + 0.2) == "0.3"
