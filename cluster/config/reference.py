"""The configuration reference: every key an experiment file of each lab, or a sweep file, may
set, with its type, bounds, default and meaning, read from the config classes themselves.
``labrun keys`` prints it as a table; ``labrun keys --markdown`` writes docs/configuration.md."""

from __future__ import annotations

from typing import Iterable

from cluster.config.schema import describe_fields
from cluster.config.sweep import SweepConfig


def markdown(experiments: Iterable[tuple[str, type]]) -> str:
    """The reference as Markdown: one table per (lab name, experiment class), then the sweep file."""
    parts = ["# Configuration reference\n",
             "Every key of an experiment file (one section per lab, chosen by the file's top-level "
             "`lab` key) and of a sweep file, with what it expects, its default and its meaning. "
             "Generated from the config classes by `labrun keys --markdown`; "
             "`labrun keys LAB` prints one lab's table.\n"]
    sections = [(f"Lab `{name}`", cls) for name, cls in experiments]
    sections.append(("Sweep files (`labrun tune`)", SweepConfig))
    for title, cls in sections:
        parts.append(f"## {title}\n")
        parts.append("| key | expected | default | meaning |\n|---|---|---|---|")
        for row in describe_fields(cls):
            parts.append("| " + " | ".join(_cell(c) for c in row) + " |")
        parts.append("")
    return "\n".join(parts)


def _cell(text: str) -> str:
    text = text.replace("|", "\\|")
    return f"`{text}`" if text and " " not in text and not text.startswith("`") else text
