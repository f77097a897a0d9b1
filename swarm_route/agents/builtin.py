"""The default pool: tool agents that compute real answers on this machine, with no model download.

- ``calculator``: arithmetic, percentages and math functions, evaluated on a whitelisted AST.
- ``clock``: current time in a city or zone, weekday of a date, days between dates.
- ``pydoc``: the signature and summary of a Python standard-library object.

Each raises a non-retryable ``AgentError`` when the query is not its kind, so dispatch falls back.
"""

from __future__ import annotations

import ast
import asyncio
import datetime as dt
import inspect
import math
import operator
import pydoc
import re
import sys
from collections.abc import Callable
from functools import lru_cache
from zoneinfo import ZoneInfo, available_timezones

from swarm_route.core.messages import AgentAnswer, AgentError
from swarm_route.core.registry import AgentKind, AgentSpec, ModelOption, Skill

# ---------------------------------------------------------------- calculator

_BINARY: dict[type, Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type, Callable[[float], float]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCS: dict[str, Callable[..., float]] = {
    name: getattr(math, name)
    for name in ("sqrt", "log", "log10", "log2", "exp", "sin", "cos", "tan", "floor", "ceil", "factorial")
} | {"abs": abs, "round": round}
_CONSTS = {"pi": math.pi, "e": math.e}
_WORDS = [
    (r"\bplus\b", "+"),
    (r"\bminus\b", "-"),
    (r"\b(times|multiplied by)\b", "*"),
    (r"\b(divided by|over)\b", "/"),
    (r"\bto the power of\b", "**"),
    (r"\bsquared\b", "**2"),
    (r"\bsquare root of\s*([\d.]+)", r"sqrt(\1)"),
    (r"\b(?:natural log(?:arithm)?|ln) of\s*([\d.]+)", r"log(\1)"),
    (r"\blog(?:arithm)? of\s*([\d.]+)", r"log10(\1)"),
    (r"\b(sqrt|exp|sin|cos|tan|factorial)\s+(?:of\s+)?([\d.]+)", r"\1(\2)"),
    (r"(\d)\s*[x×]\s*(\d)", r"\1*\2"),
    (r"÷", "/"),
    (r"\^", "**"),
]
_PERCENT_OF = re.compile(r"([\d.]+)\s*%\s*of\s*([\d.]+)")
_EXPR = re.compile(r"[\d.()+\-*/%\s]*(?:(?:[a-z]+\d*\()|[\d(])[\w.()+\-*/%,\s]*")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_WORD = re.compile(r"[a-z]+")
# words a query may wrap its arithmetic in; any other word left outside the expression is a request the
# calculator did not understand ("cube root of 27", "arctan of 1")
_FILLER = frozenset(
    [
        "what",
        "whats",
        "is",
        "are",
        "the",
        "of",
        "compute",
        "calculate",
        "evaluate",
        "please",
        "equals",
        "equal",
        "to",
        "how",
        "much",
        "tell",
        "me",
        "result",
        "value",
        "answer",
        "can",
        "you",
        "a",
        "an",
        "i",
        "need",
        "work",
        "out",
        "give",
        "find",
        "do",
        "does",
        "quickly",
        "get",
        "s",
    ]
)
MAX_QUERY = 500  # longer is not a calculator query, and the expression scan stays short
MAX_BITS = 10_000  # no integer, intermediate or final, may outgrow ~3,000 digits
MAX_DEPTH = 50  # nesting of the expression tree


def _int_bits(x: float) -> int:
    return abs(x).bit_length() if isinstance(x, int) else 0


def _check_size(op: ast.operator, left: float, right: float) -> None:
    """Refuse before computing what would outgrow ``MAX_BITS``: ``(9**9999)**9999`` must not run for minutes."""
    if isinstance(op, ast.Pow) and isinstance(left, int) and isinstance(right, int) and right > 0:
        if right * max(1, _int_bits(left)) > MAX_BITS:
            raise AgentError("the result would be too large to compute")
    elif isinstance(op, ast.Pow) and abs(right) > MAX_BITS:
        raise AgentError("exponent too large")
    elif isinstance(op, ast.Mult) and _int_bits(left) + _int_bits(right) > MAX_BITS:
        raise AgentError("the result would be too large to compute")


def _eval(node: ast.AST, depth: int = 0) -> float:
    if depth > MAX_DEPTH:
        raise AgentError("the expression is nested too deeply")
    if isinstance(node, ast.Expression):
        return _eval(node.body, depth + 1)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.Name) and node.id in _CONSTS:
        return _CONSTS[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left, depth + 1), _eval(node.right, depth + 1)
        _check_size(node.op, left, right)
        return _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand, depth + 1))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCS and not node.keywords:
        args = [_eval(a, depth + 1) for a in node.args]
        if node.func.id == "factorial" and (len(args) != 1 or args[0] > 1000 or args[0] != int(args[0])):
            raise AgentError("factorial needs a whole number up to 1000")
        return _FUNCS[node.func.id](*(int(a) if node.func.id == "factorial" else a for a in args))
    raise AgentError("not an arithmetic expression")


def _format(x: float) -> str:
    if isinstance(x, int) or (isinstance(x, float) and x.is_integer() and abs(x) < 1e16):
        return str(int(x))
    return f"{x:.10g}"


def _whole(expr: str, text: str) -> bool:
    """Whether ``expr`` is all the arithmetic the query asks for: every number of the query in it, and only
    filler words left outside it. Answering "square root of 2" with "2 = 2" would be worse than declining."""
    rest = text.replace(expr, " ", 1)
    return not _NUMBER.search(rest) and all(word in _FILLER for word in _WORD.findall(rest))


def calculate(query: str) -> str:
    """The arithmetic the query asks for, evaluated with every intermediate result bounded; otherwise an
    ``AgentError`` saying why (the query is not arithmetic, only part of it is, or it is too large)."""
    if len(query) > MAX_QUERY:
        raise AgentError(f"too long for the calculator (at most {MAX_QUERY} characters)")
    text = query.lower().replace(",", "")
    for pattern, repl in _WORDS:
        text = re.sub(pattern, repl, text)
    text = _PERCENT_OF.sub(r"(\1/100*\2)", text)
    candidates = sorted((m.group().strip() for m in _EXPR.finditer(text)), key=len, reverse=True)
    for raw in candidates:
        expr = raw.rstrip("?.! ")
        if not re.search(r"\d|pi|\be\b", expr):
            continue
        try:
            answer = _format(_eval(ast.parse(expr, mode="eval")))
        except AgentError:
            raise
        except ZeroDivisionError:
            raise AgentError("division by zero") from None
        except (OverflowError, RecursionError, MemoryError):
            raise AgentError("the result would be too large to compute") from None
        except (SyntaxError, TypeError, ValueError):
            continue
        if not _whole(raw, text):
            raise AgentError("only part of this query is arithmetic the calculator understands")
        return f"{expr} = {answer}"
    raise AgentError("no arithmetic expression found in the query")


# ---------------------------------------------------------------- clock

_DATE = re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b")


@lru_cache(maxsize=1)
def _zones_by_place() -> dict[str, str]:
    places: dict[str, str] = {}
    for zone in available_timezones():
        place = zone.rsplit("/", 1)[-1].replace("_", " ").lower()
        if "/" in zone and not zone.startswith("Etc/"):
            places.setdefault(place, zone)
        places.setdefault(zone.lower(), zone)
    return places


def _zone_in(query: str) -> str | None:
    q = query.lower()
    best = None
    for place, zone in _zones_by_place().items():
        if len(place) > 2 and re.search(rf"\b{re.escape(place)}\b", q) and (best is None or len(place) > len(best[0])):
            best = (place, zone)
    return best[1] if best else None


def tell_time(query: str, now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.UTC)
    dates = []
    for y, m, d in _DATE.findall(query):
        try:
            dates.append(dt.date(int(y), int(m), int(d)))
        except ValueError as exc:
            raise AgentError(f"not a valid date: {y}-{m}-{d}") from exc
    if len(dates) >= 2:
        days = (dates[1] - dates[0]).days
        return f"From {dates[0]} to {dates[1]} is {days} days."
    if len(dates) == 1:
        days = (dates[0] - now.date()).days
        when = f"{days} days from today" if days >= 0 else f"{-days} days ago"
        return f"{dates[0]} is a {dates[0]:%A}, {when} ({now.date()} UTC)."
    zone = _zone_in(query)
    if zone:
        local = now.astimezone(ZoneInfo(zone))
        return f"It is {local:%H:%M} on {local:%A, %d %B %Y} in {zone} (UTC{local:%z})."
    if re.search(r"\b(time|date|day|today|now|utc)\b", query.lower()):
        return f"It is {now:%H:%M} UTC on {now:%A, %d %B %Y}."
    raise AgentError("no time, date or place found in the query")


# ---------------------------------------------------------------- pydoc

_DOTTED = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+|[A-Za-z_][A-Za-z0-9_]*)\b")


_STDLIB = frozenset(sys.stdlib_module_names - {"antigravity", "this", "idlelib", "turtledemo", "tkinter", "turtle"}) | {
    "str",
    "int",
    "float",
    "list",
    "dict",
    "set",
    "tuple",
    "bytes",
    "range",
    "open",
    "print",
    "len",
    "sorted",
    "map",
    "filter",
    "zip",
    "enumerate",
    "isinstance",
    "max",
    "min",
    "sum",
    "any",
    "all",
}


def describe_python(query: str) -> str:
    names = sorted(set(_DOTTED.findall(query)), key=lambda n: (-n.count("."), -len(n)))
    for name in names:
        if name.split(".", 1)[0] not in _STDLIB:  # locate() imports: never let a query import arbitrary code
            continue
        obj = pydoc.locate(name)
        if obj is None:
            continue
        doc = inspect.getdoc(obj) or ""
        summary = doc.split("\n\n", 1)[0].strip() if doc else "(no docstring)"
        try:
            signature = f"{name}{inspect.signature(obj)}"
        except (TypeError, ValueError):
            signature = name
        return f"{signature}\n\n{summary}"
    raise AgentError("no Python standard-library name found in the query")


TOOLS: dict[str, Callable[[str], str]] = {
    "calculator": calculate,
    "clock": tell_time,
    "pydoc": describe_python,
}


class BuiltinBackend:
    """Runs a tool in-process; the Serve app puts it in its own deployment and calls it through a handle.
    A tool runs in a worker thread, never on the event loop, and is given ``deadline_s``: past it the call
    fails as the agent's own error (the thread, bounded by the tools' own limits, finishes on its own)."""

    def __init__(self, deadline_s: float = 2.0) -> None:
        self.deadline_s = deadline_s

    async def answer(self, spec: AgentSpec, model: str, query: str, context: str | None = None) -> AgentAnswer:
        """A tool parses its own part of a message; the rest (``context``) would only mislead it."""
        tool = TOOLS.get(spec.endpoint)
        if tool is None:
            raise AgentError(f"no builtin tool named {spec.endpoint!r}; known: {', '.join(TOOLS)}")
        try:
            return AgentAnswer(text=await asyncio.wait_for(asyncio.to_thread(tool, query), self.deadline_s))
        except TimeoutError:
            raise AgentError(f"{spec.endpoint} took longer than {self.deadline_s} s") from None


def default_pool() -> list[AgentSpec]:
    """The agents ``make run`` registers: distinct skills, so routing visibly differs by query."""
    return [
        AgentSpec(
            name="calculator",
            description="Evaluates arithmetic: + - * / ^, percentages, square roots, logs and trigonometry.",
            kind=AgentKind.builtin,
            endpoint="calculator",
            models=[ModelOption(name="ast-eval")],
            skills=[
                Skill(
                    name="arithmetic",
                    description="compute a number from an arithmetic expression",
                    examples=[
                        "what is 12 * 7",
                        "compute 2^10 + 3",
                        "what is 15% of 80",
                        "calculate sqrt(144) / 3",
                        "how much is 1234 divided by 7",
                        "19.99 times 3 plus 4.50",
                        "what is 2+2",
                        "3.5 * 4",
                        "square root of 81",
                        "what's 7 squared",
                        "add 45 and 67",
                        "subtract 18 from 100",
                        "20 percent of 350",
                        "log10(1000)",
                        "what is 2 to the power of 16",
                        "calculate (3 + 4) * 5",
                    ],
                )
            ],
        ),
        AgentSpec(
            name="clock",
            description="Tells the current time in a city or time zone, the weekday of a date, days between dates.",
            kind=AgentKind.builtin,
            endpoint="clock",
            models=[ModelOption(name="zoneinfo")],
            skills=[
                Skill(
                    name="datetime",
                    description="time, dates, weekdays and time zones",
                    examples=[
                        "what time is it in Tokyo",
                        "current time in New York",
                        "what day of the week is 2024-07-04",
                        "how many days between 2025-01-01 and 2025-03-01",
                        "what is the date today",
                        "time now in Europe/Berlin",
                        "what day is it",
                        "what time is it",
                        "what's today's date",
                        "local time in Sydney",
                        "what time is it in London right now",
                        "days until 2027-12-25",
                        "which weekday was 2000-01-01",
                        "what is the time in UTC",
                    ],
                )
            ],
        ),
        AgentSpec(
            name="pydoc",
            description="Explains Python standard-library functions, classes and modules from their documentation.",
            kind=AgentKind.builtin,
            endpoint="pydoc",
            models=[ModelOption(name="stdlib-docs")],
            skills=[
                Skill(
                    name="python-docs",
                    description="documentation of Python standard library functions and modules",
                    examples=[
                        "what does itertools.groupby do",
                        "explain json.dumps",
                        "python docs for collections.Counter",
                        "how do I use os.path.join",
                        "signature of functools.lru_cache",
                        "what is str.split in python",
                        "explain os.getcwd",
                        "what does re.sub do",
                        "how to use itertools.chain",
                        "docs for datetime.timedelta",
                        "what arguments does open take",
                        "describe math.isclose",
                        "python help on dict.get",
                        "what is pathlib.Path",
                    ],
                )
            ],
        ),
    ]
