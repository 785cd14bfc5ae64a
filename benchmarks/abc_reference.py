"""An independent ABC implementation to hold the strict judge against: abcMIDI's ``abc2midi``, the
converter behind the course's own ``play_song`` (Debian package ``abcmidi``).

abc2midi accepts a tune when it writes a MIDI file and prints no ``Error`` line (its ``Warning``
lines, such as a bar's length differing from the metre, do not count). Benchmarks only: the lab
and the tests never need it; without it the results say "not installed".
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Sequence

NOT_INSTALLED = "not installed"


def find_abc2midi() -> str | None:
    """The path of abc2midi on PATH, or None."""
    return shutil.which("abc2midi")


def abc2midi_version(exe: str | None) -> str:
    """'abc2midi 4.84 January 20 2023' or "not installed"."""
    if exe is None:
        return NOT_INSTALLED
    out = subprocess.run([exe, "-ver"], capture_output=True, text=True, timeout=30)
    words = (out.stdout + out.stderr).split()
    return "abc2midi " + " ".join(w for w in words if w != "abc2midi")


def abc2midi_errors(output: str) -> list[str]:
    """The ``Error`` lines of abc2midi's output, each without its position prefix."""
    return [line.split(":", 1)[-1].strip() for line in output.splitlines() if line.startswith("Error")]


def abc2midi_accepts(abc: str, exe: str, timeout: float = 30.0) -> tuple[bool, str]:
    """(True, 'ok') if abc2midi converts the tune without an error, else (False, its first error)."""
    with tempfile.TemporaryDirectory() as folder:
        tune, midi = Path(folder) / "tune.abc", Path(folder) / "tune.mid"
        tune.write_text(abc + "\n", encoding="utf-8")
        out = subprocess.run([exe, str(tune), "-o", str(midi)], capture_output=True, text=True,
                             timeout=timeout, cwd=folder)
        errors = abc2midi_errors(out.stdout + out.stderr)
        if errors:
            return False, errors[0]
        return (True, "ok") if midi.is_file() else (False, "no MIDI file written")


def agreement(strict: Sequence[bool], reference: Sequence[bool], name: str = "abc2midi") -> dict[str, int]:
    """The 2x2 table of two verdicts on the same tunes: strict valid/invalid x reference
    accepts/rejects, as counts with readable keys."""
    if len(strict) != len(reference):
        raise ValueError(f"{len(strict)} strict verdicts for {len(reference)} of {name}'s")
    pairs = list(zip(strict, reference))
    return {f"strict {s}, {name} {r}": sum(p == (sv, rv) for p in pairs)
            for s, sv in (("valid", True), ("invalid", False))
            for r, rv in (("accepts", True), ("rejects", False))}
