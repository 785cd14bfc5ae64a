"""What a person sees while a run trains: a live progress line, events, a summary table.

Text from data (run names, paths, error messages) goes to rich as ``Text``: it prints as it is,
never read as rich markup; only labrun's own styling (the yellow "!" of an event) is styled."""

from __future__ import annotations

import time
from typing import Mapping

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text


def progress_text(m: Mapping[str, float]) -> str:
    """``iter 12  steps 45,312  return 123.4  18,200 steps/s``; for Atari games also the points
    won and lost, the win rate and emulator frames/s; once workers were dropped, how many are left."""
    ret = m.get("rollout/episode_return_mean")
    ret_text = f"{ret:8.1f}" if ret is not None else "       -"
    line = (f"iter {int(m['counters/iteration']):>5}  steps {int(m['counters/env_steps']):>10,}  "
            f"return {ret_text}  {m.get('time/env_steps_per_s', 0.0):>9,.0f} steps/s")
    if "rollout/points_won_mean" in m:
        line += (f"  points {m['rollout/points_won_mean']:4.1f}:{m['rollout/points_lost_mean']:4.1f}"
                 f"  won {100 * m['rollout/win_rate']:3.0f}%  {m['time/frames_per_s']:>7,.0f} frames/s")
    if m.get("counters/workers_dropped"):
        line += (f"  workers {int(m['counters/workers'])} "
                 f"({int(m['counters/workers_dropped'])} dropped)")
    return line


class ConsoleProgress:
    """A live line on a terminal; elsewhere (logs, CI) a plain line every ``every_s`` seconds."""

    def __init__(self, every_s: float = 1.0, console: Console | None = None):
        self.console = console or Console(highlight=False)
        self.every_s = every_s
        self._last = 0.0
        self._pending: str | None = None
        self._live = Live(Text(""), console=self.console, refresh_per_second=4, transient=True) \
            if self.console.is_terminal else None
        if self._live:
            self._live.start()

    def update(self, metrics: Mapping[str, float]) -> None:
        line = progress_text(metrics)
        if self._live:
            self._live.update(Text(line))
            return
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self.console.print(line)
            self._last = now
            self._pending = None
        else:
            self._pending = line

    def event(self, message: str) -> None:
        self.console.print(Text.assemble(("!", "yellow"), " ", message))

    def line(self, text: str) -> None:
        """A line of text, printed as it is."""
        self.console.print(Text(text))

    def close(self) -> None:
        if self._live:
            self._live.stop()
        elif self._pending:
            self.console.print(self._pending)

    def summary(self, title: str, rows: list[tuple[str, str]]) -> None:
        table = Table(title=Text(title, style="table.title"), show_header=False,
                      title_justify="left")
        table.add_column(style="bold")
        table.add_column()
        for key, value in rows:
            table.add_row(Text(key), Text(value))
        self.console.print(table)
