"""Tunes played: the notes of a music21 score as a WAV file, from an external MIDI synthesiser
(timidity, fluidsynth) if one is installed, else a small additive synthesiser here (NumPy and the
standard library's ``wave``), which also plays the music lab's TensorBoard audio.
"""

from __future__ import annotations

import shutil
import subprocess
import wave
from pathlib import Path
from typing import Sequence

import numpy as np

SAMPLE_RATE = 22_050
RENDER_TIMEOUT_S = 60


def score_notes(score, max_seconds: float = 120.0) -> list[tuple[float, float, float]]:
    """(frequency Hz, start s, duration s) of every sounding pitch, timed by the score's tempo
    (music21's default when the tune gives none); grace notes skipped; cut at ``max_seconds``."""
    notes = []
    for entry in score.flatten().secondsMap:
        element, start, duration = entry["element"], entry["offsetSeconds"], entry["durationSeconds"]
        if not hasattr(element, "pitches") or duration <= 0 or start >= max_seconds:
            continue  # rests have no pitches; clefs, keys and meters no duration
        for pitch in element.pitches:
            notes.append((float(pitch.frequency), float(start), float(min(duration, max_seconds - start))))
    return notes


def synthesize(notes: Sequence[tuple[float, float, float]], rate: int = SAMPLE_RATE) -> np.ndarray:
    """Additive synthesis, float32 [N] in [-1, 1], N = rate * (last note's end): each note is a
    fundamental with two overtones (1, 1/2, 1/4), a 10 ms attack, a decay and a 20 ms release."""
    end = max((start + dur for _, start, dur in notes), default=0.0)
    out = np.zeros(int(round(end * rate)), np.float64)
    for freq, start, dur in notes:
        lo, n = int(round(start * rate)), int(round(dur * rate))
        n = min(n, len(out) - lo)
        if n <= 0:
            continue
        t = np.arange(n) / rate                                                     # [n] s
        left = (n - np.arange(n)) / rate                                            # [n] s to the end
        tone = sum(a * np.sin(2 * np.pi * k * freq * t) for k, a in ((1, 1.0), (2, 0.5), (3, 0.25)))
        envelope = np.minimum(1.0, t / 0.01) * np.exp(-2.0 * t) * np.minimum(1.0, left / 0.02)
        out[lo:lo + n] += tone * envelope
    peak = np.abs(out).max() if len(out) else 0.0
    return (out * (0.8 / peak) if peak > 0 else out).astype(np.float32)


def write_wav(path: str | Path, samples: np.ndarray, rate: int = SAMPLE_RATE) -> None:
    """16-bit mono WAV of float samples [N] in [-1, 1] (the standard library's ``wave``)."""
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes(pcm.tobytes())


_SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/default-GM.sf2",
               "/usr/share/soundfonts/default.sf2")


def find_renderer() -> str:
    """'timidity' or 'fluidsynth' (with a General MIDI sound font) if on PATH, else 'builtin'."""
    if shutil.which("timidity"):
        return "timidity"
    if shutil.which("fluidsynth") and any(Path(f).is_file() for f in _SOUNDFONTS):
        return "fluidsynth"
    return "builtin"


def render_wav(score, midi_file: Path, wav_file: Path, renderer: str) -> str:
    """Writes ``wav_file`` from the MIDI file with ``renderer``, or from the score with the
    built-in synthesiser if that is the renderer or the external one fails; the one used."""
    if renderer == "timidity":
        freepats = "/etc/timidity/freepats.cfg"
        cmd = ["timidity", *(["-c", freepats] if Path(freepats).is_file() else []),
               "-Ow", "-s", str(SAMPLE_RATE), "-o", str(wav_file), str(midi_file)]
    elif renderer == "fluidsynth":
        font = next(f for f in _SOUNDFONTS if Path(f).is_file())
        cmd = ["fluidsynth", "-ni", "-F", str(wav_file), "-r", str(SAMPLE_RATE), font, str(midi_file)]
    else:
        cmd = None
    if cmd is not None:
        try:
            done = subprocess.run(cmd, capture_output=True, timeout=RENDER_TIMEOUT_S)
            if done.returncode == 0 and wav_file.is_file() and wav_file.stat().st_size > 44:
                return renderer
        except (OSError, subprocess.TimeoutExpired):
            pass
    write_wav(wav_file, synthesize(score_notes(score)))
    return "builtin"
