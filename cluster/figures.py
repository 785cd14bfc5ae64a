"""Every plot labrun writes (a run's learning curve, a sweep's trials, the benchmarks' figures):
matplotlib without a display (Agg), each figure laid out, written to its path (folders made) and
closed."""

from __future__ import annotations

from pathlib import Path


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: Path) -> Path:
    """Lays ``fig`` out, writes it to ``path`` and closes it; returns ``path``."""
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    pyplot().close(fig)
    return path
