"""A strict judge of ABC tunes: a tune is valid only when every token of it is understood.

music21 (``supervised/music_check.py``) skips what it cannot read; this judge skips nothing and
guesses nothing. It reads the subset of ABC 2.1 that the course's ``irish.abc`` uses, and a few
common constructs beside it:

- header: ``X:<number>`` first, then fields (T, Z, M, L, R, Q, C, O, A, N, P, H, B, D, F, S, G, I,
  W), ``K:`` last; M:, L:, K:, Q: values are checked (metre n/2^k, C, C| or none; L: 1/2^k;
  a key: tonic, one of the named modes or its three-letter form, explicit accidentals).
- body: notes (accidentals ^ ^^ _ __ =, octave marks , after C-B and ' after c-b, as abc2midi
  and the corpus have them; lengths 3, /, //, 3/2: no zero, denominators powers of 2), rests z x and Z<n>, chords [CEG]2, grace notes {ga} and
  {/g}, chord symbols and annotations "..." closed on their line, decorations ~ . !name!, ties,
  slurs, tuplets (p, (p:q, (p:q:r (2-9, never nested, finished), broken rhythm > >> >>> <
  between two notes or chords of equal length, bar lines | || |] [| |: :| :: :|: and variant
  endings [1 |1 :|2 [1,3 [1-2 right after a bar line (ending n > 1 only after ending n - 1
  and a :| since), inline fields [K:..] [M:..] [L:..] [Q:..] [P:..], the body fields K M L Q P T
  W on their own lines, ``!`` ending a line (the course's line break), ``\\`` continuing one,
  ``%`` comments.

A first ending placed before any ``|:`` (the section repeats from the tune's start, or from the
last :|) is accepted: it is how 56 of irish.abc's tunes are written, and ABC 2.1 allows it
(abc2midi refuses it). Anything else is invalid, with one line naming the token and where it is.
Pure functions, no imports beyond the standard library.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

HEADER_FIELDS = set("TZMLRQCOANPHBDFSGIW")
BODY_FIELDS = set("KMLQPTW")
INLINE_FIELDS = set("KMLQP")
BARS = {"|", "||", "|]", "[|", "|:", ":|", "::", ":|:", ":||:", "[|:", ":|]", "||:", ":||"}
MODES = {"maj", "major", "m", "min", "minor", "ion", "ionian", "aeo", "aeolian", "mix", "mixolydian",
         "dor", "dorian", "phr", "phrygian", "lyd", "lydian", "loc", "locrian"}
DECORATIONS = {"trill", "turn", "roll", "mordent", "lowermordent", "uppermordent", "pralltriller",
               "fermata", "accent", ">", "emphasis", "staccato", "tenuto", "segno", "coda", "D.S.",
               "D.C.", "fine", "upbow", "downbow", "slide", "breath", "open", "thumb", "snap",
               "invertedfermata", "invertedturn", "arpeggio", "trem1", "trem2", "trem3", "trem4",
               "p", "pp", "ppp", "mp", "mf", "f", "ff", "fff", "sfz", "crescendo(", "crescendo)",
               "diminuendo(", "diminuendo)", "<(", "<)", ">(", ">)", "0", "1", "2", "3", "4", "5"}

_NOTE = re.compile(r"(\^\^|\^|__|_|=)?([A-Ga-g])([',]*)(\d*)(/*)(\d*)")
_REST = re.compile(r"([zx])(\d*)(/*)(\d*)|Z(\d*)")
_BAR = re.compile(r"\[\|[|:]*|[|:]*\|\]|[|:]+")
_ENDING = re.compile(r"\d+(?:[,-]\d+)*")
_TUPLET = re.compile(r"\((\d+)(?::(\d*))?(?::(\d*))?")
_KEY = re.compile(r"(?:[A-G][#b]?[ \t]*([A-Za-z]*)|none|HP|Hp)((?:[ \t]+(?:\^\^|\^|__|_|=)[a-gA-G])*)[ \t]*")
_METER = re.compile(r"C\|?|none|\d+(?:\+\d+)*/(\d+)")


class NotUnderstood(ValueError):
    """A token the judge does not understand; the message names it and where it is."""


@dataclass(frozen=True)
class Token:
    kind: str           # note, rest, chord, grace, symbol, deco, tie, slur(, slur), tuplet, broken,
                        # bar, ending, field, space, break
    text: str
    where: str          # "line 7, col 3" (within the tune)
    length: Fraction = Fraction(0)   # note, rest, chord: in units of L:; tuplet: its r
    pitch: str = ""     # note: letter and octave marks (ties compare it)


def check_strict(abc: str) -> tuple[bool, str]:
    """(True, 'ok') if every line and token of the tune is understood, else (False, why)."""
    try:
        check_structure(tokenize(abc))
    except NotUnderstood as why:
        return False, str(why)
    return True, "ok"


def tokenize(abc: str) -> list[Token]:
    """The body's tokens, after checking the header; NotUnderstood at the first unknown token."""
    lines = abc.strip().split("\n")
    if not re.fullmatch(r"X:[ \t]*\d+[ \t]*", lines[0]):
        raise NotUnderstood(f"line 1: {lines[0][:30]!r} is not an X:<number> header")
    for n, line in enumerate(lines[1:], 2):
        if line.startswith("%"):
            continue
        if not re.match(r"[A-Za-z]:", line):
            raise NotUnderstood(f"line {n}: {line[:30]!r} before the K: field (no K: header)")
        if line[0] == "K":
            check_field("K", line[2:], f"line {n}")
            break
        if line[0] not in HEADER_FIELDS:
            raise NotUnderstood(f"line {n}: header field {line[:2]!r} unknown or out of place")
        check_field(line[0], line[2:], f"line {n}")
    else:
        raise NotUnderstood("no K: field ends the header")
    tokens: list[Token] = []
    for number, line in enumerate(lines[n:], n + 1):
        tokens += tokenize_line(line, number)
    return tokens


def check_field(letter: str, value: str, where: str) -> None:
    """NotUnderstood if a K:, M:, L: or Q: value is malformed (other fields are free text)."""
    value = value.strip()
    ok = True
    if letter == "K":
        key = _KEY.fullmatch(value)
        ok = bool(key) and (not key.group(1) or key.group(1).lower() in MODES)
    elif letter == "M":
        meter = _METER.fullmatch(value)
        ok = bool(meter) and (meter.group(1) is None or _power_of_two(int(meter.group(1))))
    elif letter == "L":
        ok = bool(re.fullmatch(r"1/(\d+)", value)) and _power_of_two(int(value[2:]))
    elif letter == "Q":
        ok = bool(re.fullmatch(r"(?:\d+/\d+[ \t]*)+=[ \t]*\d+|\d+", value))
    if not ok:
        raise NotUnderstood(f"{where}: malformed {letter}: field {value[:30]!r}")


def tokenize_line(line: str, n: int) -> list[Token]:
    """The tokens of body line ``n``: a field line is one token, a music line many."""
    if re.match(r"[A-Za-z]:", line):
        if line[0] not in BODY_FIELDS:
            raise NotUnderstood(f"line {n}: field {line[:2]!r} inside the body")
        check_field(line[0], line[2:], f"line {n}")
        return [Token("field", line, f"line {n}")]
    if not line.strip():
        raise NotUnderstood(f"line {n}: blank line inside the tune")
    tokens: list[Token] = []
    i = 0
    while i < len(line):
        token, i = _next_token(line, i, f"line {n}, col {i + 1}")
        if token is not None:
            tokens.append(token)
    return tokens


def _next_token(line: str, i: int, where: str) -> tuple[Token | None, int]:
    """The token at ``line[i]`` and the index after it (None for a comment or a continuation)."""
    c, rest = line[i], line[i:]
    if c == "%":
        return None, len(line)
    if c in " \t":
        return Token("space", c, where), i + 1
    if c in "!\\" and not rest[1:].strip():
        return (Token("break", c, where) if c == "!" else None), len(line)
    if c == "!":
        end = line.find("!", i + 1)
        name = line[i + 1:end] if end > 0 else ""
        if name not in DECORATIONS:
            raise NotUnderstood(f"{where}: unknown decoration or stray '!' {rest[:12]!r}")
        return Token("deco", line[i:end + 1], where), end + 1
    if c in "~.":
        return Token("deco", c, where), i + 1
    if c == '"':
        end = line.find('"', i + 1)
        if end < 0:
            raise NotUnderstood(f"{where}: chord symbol {rest[:20]!r} never closed")
        return Token("symbol", line[i:end + 1], where), end + 1
    if c == "[" and re.match(r"\[[A-Za-z]:", rest):
        end = line.find("]", i)
        if rest[1] not in INLINE_FIELDS or end < 0:
            raise NotUnderstood(f"{where}: unknown or unclosed inline field {rest[:12]!r}")
        check_field(rest[1], line[i + 3:end], where)
        return Token("field", line[i:end + 1], where), end + 1
    if c == "[" and (m := re.match(r"\[(" + _ENDING.pattern + ")", rest)):
        return Token("ending", m.group(1), where), i + m.end()
    if c.isdigit() and i and line[i - 1] == "|" and (m := _ENDING.match(rest)):
        return Token("ending", m.group(), where), i + m.end()
    if m := _BAR.match(rest):
        if m.group() not in BARS:
            raise NotUnderstood(f"{where}: malformed bar line {m.group()!r}")
        return Token("bar", m.group(), where), i + m.end()
    if c == "[":
        return _group(line, i, "]", "chord", where)
    if c == "{":
        return _group(line, i, "}", "grace", where)
    if m := _TUPLET.match(rest):
        p, q, r = (int(g) if g else None for g in m.groups())
        if not 2 <= p <= 9 or q == 0 or r == 0:
            raise NotUnderstood(f"{where}: malformed tuplet {m.group()!r}")
        return Token("tuplet", m.group(), where, Fraction(r or p)), i + m.end()
    if c in "()":
        return Token("slur" + c, c, where), i + 1
    if m := re.match(r">{1,3}|<{1,3}", rest):
        return Token("broken", m.group(), where), i + m.end()
    if c == "-":
        return Token("tie", c, where), i + 1
    if m := _REST.match(rest):
        length = _length(m.group(2) or "", m.group(3) or "", m.group(4) or "", m.group(), where)
        return Token("rest", m.group(), where, length), i + m.end()
    if m := _NOTE.match(rest):
        return _note(m, where), i + m.end()
    raise NotUnderstood(f"{where}: unknown token {rest[:12]!r}")


def _note(m: re.Match, where: str) -> Token:
    _, letter, octave, num, slashes, den = m.groups()
    if octave and octave.strip("," if letter.isupper() else "'"):
        raise NotUnderstood(f"{where}: malformed note {m.group()!r} (octave marks: C, and c' only)")
    return Token("note", m.group(), where, _length(num, slashes, den, m.group(), where), letter + octave)


def _length(num: str, slashes: str, den: str, text: str, where: str) -> Fraction:
    """A note length: ``3`` -> 3, ``/`` -> 1/2, ``//`` -> 1/4, ``3/2`` -> 3/2; NotUnderstood for
    zero, ``2//4`` or a denominator that is not a power of 2."""
    top = int(num) if num else 1
    if den and len(slashes) != 1 or den and not _power_of_two(int(den)) or top == 0:
        raise NotUnderstood(f"{where}: malformed length in {text!r}")
    return Fraction(top, int(den) if den else 2 ** len(slashes))


def _group(line: str, i: int, close: str, kind: str, where: str) -> tuple[Token, int]:
    """A chord [..] (notes, each maybe tied, then the chord's length) or grace notes {..}
    (notes, maybe after a /)."""
    end = line.find(close, i + 1)
    inner = line[i + 1:end] if end > 0 else ""
    pattern = r"/?(?:" + _NOTE.pattern + r")+" if kind == "grace" else r"(?:" + _NOTE.pattern + r"-?)+"
    if end < 0 or not re.fullmatch(pattern, inner):
        raise NotUnderstood(f"{where}: malformed or unclosed {kind} {line[i:i + 12]!r}")
    lengths = [_note(m, where).length for m in _NOTE.finditer(inner)]
    length = re.match(r"(\d*)(/*)(\d*)", line[end + 1:]) if kind == "chord" else None
    stop = end + 1 + (length.end() if length else 0)
    outer = _length(*length.groups(), line[i:stop], where) if length else Fraction(1)
    return Token(kind, line[i:stop], where, lengths[0] * outer), stop


def _power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


# ---------------------------------------------------------------------------------- structure

_PLAYED = {"note", "chord", "rest"}
_PREFIX = {"grace", "symbol", "deco"}


def check_structure(tokens: list[Token]) -> None:
    """NotUnderstood where tokens, each well formed, do not fit together (see the module's
    docstring): ties, broken rhythm, tuplets, slurs, prefixes, variant endings, and a note."""
    tuplet_left, slurs, after_bar, last_ending, repeat_since = 0, 0, True, 0, False
    for k, tok in enumerate(tokens):
        prev = tokens[k - 1] if k else None
        after = tokens[k + 1] if k + 1 < len(tokens) else None
        if tok.kind == "tie":
            if prev is None or prev.kind not in ("note", "chord"):
                raise NotUnderstood(f"{tok.where}: tie '-' after no note")
            _check_tied(prev, tokens[k + 1:], tok.where)
        elif tok.kind == "broken":
            if not (prev and after and {prev.kind, after.kind} <= {"note", "chord"}):
                raise NotUnderstood(f"{tok.where}: broken rhythm {tok.text!r} not between two notes")
            if prev.length != after.length:
                raise NotUnderstood(f"{tok.where}: broken rhythm {tok.text!r} between unequal notes "
                                    f"{prev.text!r} and {after.text!r}")
        elif tok.kind == "tuplet":
            if tuplet_left:
                raise NotUnderstood(f"{tok.where}: tuplet {tok.text!r} nested in another")
            tuplet_left = int(tok.length)
        elif tok.kind in _PLAYED and tuplet_left:
            tuplet_left -= 1
        elif tok.kind in ("slur(", "slur)"):
            slurs += 1 if tok.kind == "slur(" else -1
            if slurs < 0:
                raise NotUnderstood(f"{tok.where}: slur ')' with no '(' open")
        elif tok.kind in _PREFIX:
            nxt = next((t for t in tokens[k + 1:] if t.kind not in _PREFIX | {"space"}), None)
            if nxt is None or nxt.kind not in _PLAYED:
                raise NotUnderstood(f"{tok.where}: {tok.text!r} is followed by no note")
        elif tok.kind == "ending":
            if not after_bar:
                raise NotUnderstood(f"{tok.where}: ending {tok.text} not right after a bar line")
            numbers = [int(x) for x in re.split(r"[,-]", tok.text)]
            if numbers[0] > 1 and (last_ending != numbers[0] - 1 or not repeat_since):
                raise NotUnderstood(f"{tok.where}: ending {tok.text} with no ending "
                                    f"{numbers[0] - 1} and ':|' before it")
            last_ending, repeat_since = numbers[-1], False
        if tok.kind == "bar":
            repeat_since = repeat_since or tok.text.startswith(":")
        if tok.kind not in ("space", "break", "field"):
            after_bar = tok.kind == "bar"
    if tuplet_left:
        raise NotUnderstood(f"end of tune: a tuplet misses {tuplet_left} notes")
    if slurs:
        raise NotUnderstood(f"end of tune: {slurs} slur(s) never closed")
    if not any(t.kind in ("note", "chord") for t in tokens):
        raise NotUnderstood("no notes in the body")


def _check_tied(tied: Token, rest: list[Token], where: str) -> None:
    """A tie needs a next note (after bar lines, spaces, line breaks) of the same pitch."""
    nxt = next((t for t in rest if t.kind not in ("bar", "space", "break", "field")), None)
    if nxt is None or nxt.kind not in ("note", "chord"):
        raise NotUnderstood(f"{where}: tie from {tied.text!r} to no note")
    if tied.kind == nxt.kind == "note" and tied.pitch != nxt.pitch:
        raise NotUnderstood(f"{where}: tie between different pitches {tied.text!r} and {nxt.text!r}")


def reason_kind(reason: str) -> str:
    """A reason without its position and its quoted tokens, for counting reasons:
    "line 7, col 3: broken rhythm '>' between unequal notes 'A2' and 'B'" ->
    "broken rhythm ... between unequal notes ... and ..."."""
    reason = re.sub(r"^(?:line \d+(?:, col \d+)?|end of tune): ", "", reason)
    return re.sub(r"'[^']*'|\"[^\"]*\"", "...", reason)
