"""SIGTERM handled like Ctrl-C, for the commands that train (``labrun train``, ``tune``,
``resume``): what a scheduler, ``kill`` or a container's stop sends before SIGKILL.

``with StopSignals() as stop:`` -- while inside, SIGTERM raises ``Terminated`` (a
KeyboardInterrupt, so whatever handles Ctrl-C handles it: the REINFORCE Trainer's final
checkpoint) where the main thread is, also when SIGINT is ignored (a process started in the
background); when SIGINT has a handler of its own (Tune's ``Tuner.fit``
installs one that stops the sweep and saves its state), SIGTERM is passed on to it as SIGINT
instead. ``stop.received`` says whether one came. ``ray.init`` installs its own SIGTERM handler
(``sys.exit``), so call ``stop.claim()`` after Ray has started. The handler only raises or
re-signals; the work happens where the exception lands. On exit the SIGTERM and SIGINT handlers
are put back as they were on entry (Tune leaves its SIGINT handler installed when ``fit`` returns,
and it would swallow a later Ctrl-C).
"""

from __future__ import annotations

import signal
import threading

from cluster.errors import EXIT_TERMINATED


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would raise KeyboardInterrupt."""

    reason = "stopped by request (SIGTERM)"
    exit_code = EXIT_TERMINATED


class StopSignals:
    """``with StopSignals() as stop:`` (see the module's docstring); a no-op off the main thread."""

    def __init__(self) -> None:
        self.received = False
        self._previous = self._previous_int = None
        self._main = threading.current_thread() is threading.main_thread()  # signals go there

    def __enter__(self) -> "StopSignals":
        if self._main:
            self._previous = signal.getsignal(signal.SIGTERM)
            self._previous_int = signal.getsignal(signal.SIGINT)
            self.claim()
        return self

    def claim(self) -> None:
        """(Re)installs the handler: after ``ray.init``, which replaces it."""
        if self._main:
            signal.signal(signal.SIGTERM, self._handle)

    def __exit__(self, *exc) -> None:
        if self._main and self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
        if self._main and self._previous_int is not None:
            signal.signal(signal.SIGINT, self._previous_int)

    def _handle(self, signum, frame) -> None:
        self.received = True
        handler = signal.getsignal(signal.SIGINT)
        if callable(handler) and handler is not signal.default_int_handler:
            signal.raise_signal(signal.SIGINT)   # Tune's handler: the sweep stops as on Ctrl-C
            return
        # Ctrl-C's own handler, or none: SIGINT ignored, as in a process started in the
        # background (`nohup labrun train ... &`), whose SIGTERM must still stop it
        raise Terminated()
