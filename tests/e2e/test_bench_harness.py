"""The benchmark harness still works (`make bench` is too long for the suite): one scenario
with a handful of runs against real processes, and the arithmetic of its ratios. Nothing here
asserts a timing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.harness import MARK_END, MARK_START, Row, ratio_cell, table, write_markdown
from config import PROJECT_ROOT


def test_a_scenario_prints_ratios_and_writes_the_table_and_a_chart(tmp_path: Path) -> None:
    out, charts = tmp_path / "performance.md", tmp_path / "charts"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.graph_throughput",
            "--rounds",
            "1",
            "--runs",
            "3",
            "--out",
            str(out),
            "--charts",
            str(charts),
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for ratio in ("ratio B/A:", "ratio B/D:", "ratio B/A (worker+server):"):
        line = next(x for x in done.stdout.splitlines() if x.strip().startswith(ratio))
        assert line.split(":", 1)[1].strip() != "n/a", line
    text = out.read_text()
    assert "| scenario | baseline | durable-agent | ratio: median (min–max) | goal |" in text
    assert "python -m bench.graph_throughput" in text
    assert (charts / "graph_throughput.png").stat().st_size > 0
    assert (charts / "cpu_per_run.png").stat().st_size > 0


def test_ratios_are_the_median_of_per_round_ratios_with_their_spread() -> None:
    row = Row(key="k", scenario="s", unit="runs/s", goal="g", command="c")
    for a, b in ((10.0, 5.0), (10.0, 10.0), (10.0, 20.0)):
        row.add("A", a)
        row.add("B", b)
    row.add("fast", None)
    row.ratios = [("B/A", "B", "A"), ("fast/A", "fast", "A")]
    assert ratio_cell(row) == "B/A 1.00× (0.50–2.00); fast/A n/a"


def test_the_generated_section_is_replaced_and_the_rest_of_the_note_kept(tmp_path: Path) -> None:
    note = tmp_path / "performance.md"
    note.write_text("# Performance figures\n\nWritten by hand.\n")
    row = Row(key="k", scenario="first", unit="ms", goal="g", command="c", ours=["B"])
    row.add("B", 1.0)
    write_markdown(note, f"{MARK_START}\n{table([row])}\n{MARK_END}\n")
    row.scenario = "second"
    write_markdown(note, f"{MARK_START}\n{table([row])}\n{MARK_END}\n")
    text = note.read_text()
    assert "second" in text and "first" not in text
    assert text.startswith("# Performance figures") and "Written by hand." in text
