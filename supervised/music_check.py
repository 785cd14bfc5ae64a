"""Is a generated tune music? music21 reads it (ABC), finds notes in it and writes it as MIDI.

Two defects of music21 are worked around rather than counted against a tune: a time signature
its ABC reader shares between two measures (``unshare_marks``) and repeats its MIDI writer
cannot unfold (``drop_repeats``). Any other failure makes the tune invalid, with a one-line
reason for a table. music21 is imported when a tune is first checked: it takes seconds.
"""

from __future__ import annotations

import re


class InvalidTune(ValueError):
    """A tune music21 cannot turn into notes and MIDI; the message says why."""


def parse_tune(abc: str):
    """The music21 score of one ABC tune (the first, if the text holds several); InvalidTune if
    it does not parse or has no notes."""
    import warnings

    from music21 import converter, stream

    if not abc.strip():
        raise InvalidTune("empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            score = converter.parseData(abc, format="abc")  # parseData: never read as a file name
        if isinstance(score, stream.Opus):
            score = score.scores[0]
        notes = len(score.flatten().notes)
    except Exception as err:  # music21 raises anything from its ABC handler on bad text
        raise InvalidTune(f"music21 cannot parse it: {_first_line(err)}") from None
    if notes == 0:
        raise InvalidTune("no notes")
    unshare_marks(score)
    return score


def unshare_marks(score) -> int:
    """Give each measure its own copy of a time or key signature or tempo it shares with another;
    returns how many were copied.

    music21's ABC reader puts one TimeSignature object into two measures when it splits an
    overfull bar (one note too many for the metre: common in hand transcriptions and in
    generated tunes alike); its MIDI writer then fails, inserting that object twice into its
    conductor track ("... is already found in this Stream"). One copy per measure is what a
    well-formed score has, and the MIDI is then written.
    """
    import copy

    seen: set[int] = set()
    copied = 0
    for container in score.recurse(streamsOnly=True, includeSelf=True):
        for mark in list(container.getElementsByClass(("TimeSignature", "KeySignature", "MetronomeMark"))):
            if id(mark) in seen:
                container.replace(mark, copy.deepcopy(mark))
                copied += 1
            else:
                seen.add(id(mark))
    return copied


def midi_bytes(score) -> bytes:
    """A standard MIDI file of the score; InvalidTune if music21 cannot write one. A score whose
    repeats music21 cannot unfold is changed in place to play straight through (``drop_repeats``)."""
    from music21.midi import translate
    from music21.repeat import ExpanderException

    try:
        try:
            return translate.music21ObjectToMidiFile(score).writestr()
        except ExpanderException:
            # Repeats music21 cannot unfold (a |: never closed, a :: that opens a section with
            # no end): ABC players play such a section once; the MIDI here then plays the whole
            # tune straight through, every bar once.
            drop_repeats(score)
            return translate.music21ObjectToMidiFile(score).writestr()
    except Exception as err:
        raise InvalidTune(f"MIDI writing failed: {_first_line(err)}") from None


def drop_repeats(score) -> int:
    """Make every repeat barline of the score a plain one and remove its first/second-ending
    brackets, in place: the score then plays straight through. Returns how many were changed."""
    from music21 import bar

    changed = 0
    for measure in score.recurse().getElementsByClass("Measure"):
        for side in ("leftBarline", "rightBarline"):
            if isinstance(getattr(measure, side), bar.Repeat):
                setattr(measure, side, bar.Barline("regular"))
                changed += 1
    for container in score.recurse(streamsOnly=True, includeSelf=True):
        for bracket in list(container.getElementsByClass("RepeatBracket")):
            container.remove(bracket)
            changed += 1
    return changed


def check_tune(abc: str) -> tuple[bool, str]:
    """(True, 'ok') if music21 parses the tune, finds a note and writes MIDI; else (False, why)."""
    try:
        midi_bytes(parse_tune(abc))
    except InvalidTune as why:
        return False, str(why)
    return True, "ok"


def _first_line(err: Exception) -> str:
    """The error's type and first sentence, at most 100 characters: a reason for a table."""
    sentence = re.split(r"(?<=\.)\s|\n", str(err).strip(), maxsplit=1)[0]
    if len(sentence) > 100:
        sentence = sentence[:99] + "…"
    return f"{type(err).__name__}: {sentence}".rstrip(": ")
