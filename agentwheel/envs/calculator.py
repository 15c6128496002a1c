"""The calculator tool: arithmetic on numbers, evaluated from the expression's syntax tree.

Never `eval`: only number literals, + - * / // % ** and parentheses are walked, with a
cap on exponents and on the length of the expression, so a model cannot run code or
stall the process with `9**9**9`.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable

MAX_EXPRESSION_CHARS = 200
MAX_EXPONENT = 100
_BINARY: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}


class CalculatorError(ValueError):
    """An expression that is not plain arithmetic, or whose value is undefined."""


def calculate(expression: str) -> float:
    """The value of an arithmetic expression (`1,200 + 35%` is not one: write `1200*1.35`)."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise CalculatorError(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError:
        raise CalculatorError(f"not an arithmetic expression: {expression!r}") from None
    try:
        value = _value(tree.body)
    except (ZeroDivisionError, OverflowError) as exc:
        raise CalculatorError(str(exc)) from None
    if not math.isfinite(value):
        raise CalculatorError("the result is not a finite number")
    return value


def _value(node: ast.expr) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        if isinstance(node.value, bool):
            raise CalculatorError("booleans are not numbers here")
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.UAdd | ast.USub):
        inner = _value(node.operand)
        return inner if isinstance(node.op, ast.UAdd) else -inner
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _value(node.left), _value(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise CalculatorError(f"exponent above {MAX_EXPONENT}")
        return _BINARY[type(node.op)](left, right)
    raise CalculatorError(
        f"only numbers and + - * / // % ** ( ) are allowed, not {ast.dump(node)[:40]}"
    )


def format_number(value: float) -> int | float:
    """An integral result as an int (`2050000`, not `2050000.0`), else rounded to 6 places."""
    return int(value) if value.is_integer() else round(value, 6)
