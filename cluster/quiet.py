"""TensorFlow's start-up chatter off the console: the native library logs a fixed set of lines
while it loads (oneDNN, CUDA stubs, CPU features; twice, as two of its libraries load), through
absl before absl is initialised, which ignores ``TF_CPP_MIN_LOG_LEVEL``. ``import_quietly``
imports a module with file descriptor 2 caught in a temporary file, then writes back every line
that is not such chatter: native warnings and errors of any other kind still reach the console,
only later. Meanwhile Python's own ``sys.stderr`` (every thread's prints, logging, tracebacks)
writes straight to the console, so a message of the main thread is neither held back nor lost
when the process ends while a thread imports. ``LABRUN_DEBUG=1`` leaves stderr alone.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import tempfile
import threading
from types import ModuleType

CHATTER = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$"
    r"|[IWE]\d{4} [\d:.]+ +\d+ (port|cudart_stub|cpu_feature_guard|cuda_platform|cuda_dnn|cuda_fft"
    r"|cuda_blas|cuda_executor|gpu_device)\.cc:\d+\] "
    r"|To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags\.$")
_LOCK = threading.Lock()   # one capture at a time: fd 2 is the process's, not a thread's


def import_quietly(name: str) -> ModuleType:
    """``importlib.import_module(name)``, its native start-up chatter dropped (see above)."""
    if name in sys.modules or os.environ.get("LABRUN_DEBUG"):
        return importlib.import_module(name)
    with _LOCK, tempfile.TemporaryFile() as caught:
        sys.stderr.flush()
        saved = os.dup(2)
        python_stderr, sys.stderr = sys.stderr, open(saved, "w", buffering=1, closefd=False)
        os.dup2(caught.fileno(), 2)
        try:
            return importlib.import_module(name)
        finally:
            os.dup2(saved, 2)
            sys.stderr.flush()
            sys.stderr, console = python_stderr, sys.stderr
            console.close()
            os.close(saved)
            caught.seek(0)
            kept = [line for line in caught.read().decode(errors="replace").splitlines(keepends=True)
                    if not CHATTER.match(line.strip())]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()
