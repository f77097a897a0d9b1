"""Shared output of the benchmarks: a rich table on the terminal, JSON on request, percentiles."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

console = Console()


def percentiles(samples_ms: Sequence[float]) -> dict[str, float]:
    if not samples_ms:
        return {"p50": float("nan"), "p99": float("nan")}
    a = np.asarray(samples_ms)
    return {"p50": round(float(np.percentile(a, 50)), 4), "p99": round(float(np.percentile(a, 99)), 4)}


def ci95(values: np.ndarray, digits: int = 4) -> list[float]:
    """The 95% percentile interval of bootstrap values (the benchmarks' intervals all read this way)."""
    return [round(float(v), digits) for v in np.percentile(values, [2.5, 97.5])]


def interval_text(bounds: Sequence[float] | None) -> str:
    """An interval as a table shows it: ``low–high``, ``-`` for none."""
    return "–".join(map(str, bounds)) if bounds else "-"


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    t = Table(title=title)
    for c in columns:
        t.add_column(c)
    for r in rows:
        t.add_row(*(f"{v:.4f}" if isinstance(v, float) else str(v) for v in r))
    console.print(t)


def write_json(path: str | Path | None, result: dict[str, Any]) -> None:
    if path:
        Path(path).write_text(json.dumps(result, indent=2))
        console.print(f"wrote {path}")
