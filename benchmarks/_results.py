"""Shared by the benchmark scripts: rewrite one ``## <script>`` section of ``benchmarks/RESULTS.md``."""

from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
HEAD = ("# Benchmark results\n\nLatest output of each script in `benchmarks/`; each script rewrites "
        "only its own `## <script>` section. Timings depend on the machine and on what else was "
        "running: compare ratios measured in the same run, not absolute seconds across sections.\n")


def replace_section(heading: str, section: str, path: Path = RESULTS) -> None:
    """Put ``section`` (which starts with ``heading``) in place of that section, or append it."""
    text = path.read_text() if path.exists() else HEAD
    start = text.find(f"\n{heading}\n")
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + section.rstrip("\n")
    else:
        nxt = text.find("\n## ", start + len(heading) + 1)
        text = text[: start + 1] + section.rstrip("\n") + ("" if nxt == -1 else "\n\n" + text[nxt + 1:])
    path.write_text(text.rstrip("\n") + "\n")
