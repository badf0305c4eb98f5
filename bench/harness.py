"""What every side-by-side scenario of `make bench` shares: a row of figures measured in
interleaved rounds, its ratios (the median of per-round ratios, with their min-max spread), the
printed summary, the markdown table of docs/performance.md and one chart per row.

A scenario measures its baselines in the same run as durable-agent, round by round, so that a
machine that slows down (it is shared) slows both sides of a ratio alike.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import psutil

T = TypeVar("T")

MARK_START = "<!-- bench:start (written by `make bench`; edit bench/, not this table) -->"
MARK_END = "<!-- bench:end -->"


@dataclass
class Row:
    """One line of the table: named series of per-round figures (None: not measurable, such as
    a mode the code under test refuses), which of them are baselines, and the ratios to show."""

    key: str  # file name of its chart
    scenario: str
    unit: str
    goal: str
    command: str
    series: dict[str, list[float | None]] = field(default_factory=dict)
    baselines: list[str] = field(default_factory=list)
    ours: list[str] = field(default_factory=list)
    # (label, numerator series, denominator series): one ratio per round.
    ratios: list[tuple[str, str, str]] = field(default_factory=list)
    note: str = ""

    def add(self, name: str, value: float | None) -> None:
        self.series.setdefault(name, []).append(value)

    def rounds(self) -> int:
        return max((len(v) for v in self.series.values()), default=0)

    def values(self, name: str) -> list[float]:
        return [v for v in self.series.get(name, []) if v is not None]

    def ratio_rounds(self, num: str, den: str) -> list[float]:
        pairs = zip(self.series.get(num, []), self.series.get(den, []), strict=False)
        return [n / d for n, d in pairs if n is not None and d is not None and d != 0]


def fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 0.1:
        return f"{value:.2f}"
    return f"{value:.2g}"


def spread(values: Sequence[float], unit: str = "") -> str:
    """`median unit (min-max)`; `n/a` without a value."""
    if not values:
        return "n/a"
    suffix = unit if unit in ("", "×") else f" {unit}"
    middle = f"{fmt(statistics.median(values))}{suffix}"
    if len(values) == 1:
        return middle
    return f"{middle} ({fmt(min(values))}–{fmt(max(values))})"


def series_cell(row: Row, names: Sequence[str]) -> str:
    if not names:
        return "–"
    cells = [f"{name}: {spread(row.values(name), row.unit)}" for name in names]
    return "; ".join(cells)


def ratio_cell(row: Row) -> str:
    if not row.ratios:
        return "–"
    cells = []
    for label, num, den in row.ratios:
        rounds = row.ratio_rounds(num, den)
        cells.append(f"{label} {spread(rounds, '×')}")
    return "; ".join(cells)


def summary(row: Row) -> str:
    """The lines a scenario prints."""
    lines = [f"== {row.scenario} ({row.rounds()} rounds)"]
    for name, values in row.series.items():
        shown = " ".join("n/a" if v is None else fmt(v) for v in values)
        lines.append(f"   {name}: {spread(row.values(name), row.unit)}  [rounds: {shown}]")
    for label, num, den in row.ratios:
        lines.append(f"   ratio {label}: {spread(row.ratio_rounds(num, den), '×')}")
    lines.append(f"   goal: {row.goal}")
    return "\n".join(lines)


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def table(rows: Sequence[Row], charts: str | None = None) -> str:
    head = [
        "| scenario | baseline | durable-agent | ratio: median (min–max) | goal |",
        "| --- | --- | --- | --- | --- |",
    ]
    body = []
    for row in rows:
        name = row.scenario if charts is None else f"[{row.scenario}]({charts}/{row.key}.png)"
        name += f", {row.rounds()} rounds"
        cells = [name, series_cell(row, row.baselines), series_cell(row, row.ours)]
        body.append("| " + " | ".join([*cells, ratio_cell(row), row.goal]) + " |")
    return "\n".join(head + body)


def markdown(rows: Sequence[Row], *, took_s: float, charts: str | None) -> str:
    machine = f"{psutil.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    commands = sorted({row.command for row in rows})
    notes = [f"- **{row.scenario}**: {row.note}" for row in rows if row.note]
    parts = [
        MARK_START,
        "## Durable-agent against raw Temporal and LangGraph (`make bench`)",
        "",
        f"Written by `make bench` ({took_s / 60:.1f} min; {machine}; load average "
        f"{load:.1f} when it ended; Python {sys.version.split()[0]}). Each scenario runs its "
        "baselines and durable-agent in interleaved rounds (the order rotated each round) on one "
        "Temporal dev server started with the flags `make up` uses; a ratio "
        "is the median of the per-round ratios, with their min–max in brackets. Figures: "
        "median (min–max) over the rounds. The machine is shared with other work, so compare "
        "ratios, not absolute figures, between runs of this script.",
        "",
        "Baselines: **A** a hand-written Temporal workflow (`bench/raw_workflows.py`) calling "
        "the same activities (same calculator and offline-model code) on a plain SDK worker; "
        "**D** LangGraph `StateGraph` with `AsyncSqliteSaver` on a file, the same node "
        "functions, in one process (`bench/langgraph_four.py`). **B** is durable-agent's "
        "worker; **B fast** the same graph with `execution: local` (n/a where the checkout's "
        "validator refuses that field).",
        "",
        table(rows, charts),
        "",
        *(["Notes:", "", *notes, ""] if notes else []),
        "To reproduce (each scenario also runs alone, `--rounds`/`--runs` for a quick check):",
        "",
        "```",
        "make bench            # all of them; writes this table and docs/performance/*.png",
        *commands,
        "make profile          # py-spy on the worker under the 4-node graph load",
        "```",
        MARK_END,
    ]
    return "\n".join(parts) + "\n"


def write_markdown(path: Path, text: str) -> None:
    """Replace the generated section of `path` (kept at its top), leaving the rest as written."""
    old = path.read_text() if path.exists() else ""
    if MARK_START in old and MARK_END in old:
        before, rest = old.split(MARK_START, 1)
        after = rest.split(MARK_END, 1)[1].lstrip("\n")
        new = before + text + ("\n" + after if after else "")
    elif old.startswith("# "):
        title, _, rest = old.partition("\n")
        new = f"{title}\n\n{text}\n{rest.lstrip(chr(10))}"
    else:
        new = "# Performance figures\n\n" + text + ("\n" + old if old else "")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new)


def chart(row: Row, folder: Path) -> Path:
    """Bars: the median of each series, whiskers its min-max over the rounds; the ratios in the
    title. Agg backend: no display needed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(row.series)
    medians, lows, highs, colors = [], [], [], []
    for name in names:
        values = row.values(name)
        mid = statistics.median(values) if values else 0.0
        medians.append(mid)
        lows.append(mid - min(values) if values else 0.0)
        highs.append(max(values) - mid if values else 0.0)
        colors.append("#4c72b0" if name in row.ours else "#999999")
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
    bars = ax.bar(names, medians, yerr=[lows, highs], capsize=4, color=colors)
    for bar, name in zip(bars, names, strict=True):
        label = "n/a" if not row.values(name) else fmt(bar.get_height())
        ax.annotate(
            label,
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    ax.set_ylabel(row.unit)
    title = row.scenario
    if row.ratios:
        title += "\n" + ratio_cell(row)
    ax.set_title(title, fontsize=9)
    ax.tick_params(axis="x", labelsize=8, labelrotation=20)
    fig.tight_layout()
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"{row.key}.png"
    fig.savefig(out)
    plt.close(fig)
    return out


def report(
    rows: Sequence[Row],
    *,
    took_s: float,
    out: Path | None,
    charts: Path | None,
) -> None:
    for row in rows:
        say(summary(row))
    if charts is not None:
        for row in rows:
            chart(row, charts)
    if out is not None:
        link = None
        if charts is not None:
            link = os.path.relpath(charts, out.parent)
        write_markdown(out, markdown(rows, took_s=took_s, charts=link))
        say(f"wrote {out}")


def save(rows: Sequence[Row], path: Path, took_s: float) -> None:
    """The measurements, so that the note can be written again without measuring again."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"took_s": took_s, "rows": [dataclasses.asdict(row) for row in rows]}
    path.write_text(json.dumps(data, indent=1) + "\n")


def load(path: Path) -> tuple[list[Row], float]:
    data = json.loads(path.read_text())
    rows = []
    for raw in data["rows"]:
        raw["ratios"] = [tuple(r) for r in raw["ratios"]]
        rows.append(Row(**raw))
    return rows, float(data["took_s"])


# -- running a scenario ------------------------------------------------------------------------

Scenario = Callable[[int, int | None], Awaitable[list[Row]]]


def arguments(doc: str | None, rounds: int, runs: int | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=rounds, help="interleaved rounds")
    parser.add_argument(
        "--runs", type=int, default=runs, help="runs (or requests) per side per round"
    )
    parser.add_argument("--out", type=Path, default=None, help="write the table to this file")
    parser.add_argument("--charts", type=Path, default=None, help="write PNG charts here")
    return parser


def main(scenario: Scenario, doc: str | None, *, rounds: int = 3, runs: int | None = None) -> None:
    """`python -m bench.<scenario> [--rounds N] [--runs N] [--out file.md] [--charts dir]`."""
    args = arguments(doc, rounds, runs).parse_args()
    started = time.monotonic()
    rows = asyncio.run(scenario(args.rounds, args.runs))
    report(
        rows,
        took_s=time.monotonic() - started,
        out=args.out,
        charts=args.charts,
    )


def rotated(sides: Sequence[T], round_: int) -> list[T]:
    """The sides in a different order each round, so none is always measured first."""
    k = round_ % len(sides)
    return list(sides[k:]) + list(sides[:k])


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


class CpuMeter:
    """CPU seconds (user + system) used by some processes between `start()` and `stop()`."""

    def __init__(self, pids: Sequence[int]) -> None:
        self.procs = [psutil.Process(pid) for pid in pids]
        self._at: list[float] = []

    def _now(self) -> list[float]:
        return [sum(p.cpu_times()[:2]) + _children_cpu(p) for p in self.procs]

    def start(self) -> None:
        self._at = self._now()

    def stop(self) -> list[float]:
        return [b - a for a, b in zip(self._at, self._now(), strict=True)]


def _children_cpu(proc: psutil.Process) -> float:
    # The `temporal` CLI may run the server as a child process of its own.
    total = 0.0
    for child in proc.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.NoSuchProcess:
            pass
    return total
