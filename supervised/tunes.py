"""Tunes in ABC notation: the music lab's corpora, and its text maths as pure functions.

Corpora: the course's ``irish.abc`` (804 Irish folk tunes), found like MNIST (``data_path``,
``$LABRUN_DATA_DIR``, an installed ``mitdeeplearning`` package, the cache, the download checked
against its SHA-256), or O'Neill's *Music of Ireland* (1850, 2,009 tunes) from the corpus that
ships inside music21, read as raw text (parsing 2,000 tunes with music21 would take minutes).

Text maths, the course's: the tunes joined by blank lines are one long text; each distinct
character gets an id (``build_vocab``, ``vectorize``); a training example is a window of
``seq_length`` ids and the same window one character later (``get_batch``).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np

from supervised.data import DATA_DIR_ENV, Absent, DataUnavailable, fetch_verified, find_local

IRISH_NAME = "irish.abc"
IRISH_URL = ("https://raw.githubusercontent.com/MITDeepLearning/introtodeeplearning/master/"
             "mitdeeplearning/data/irish.abc")
IRISH_SHA256 = "df3782d5f7b5a2f4c66aa7c13f13008d5f48757b3f5f51620cd6c1ceb2c53023"
MUSIC21_CORPUS = "oneills1850"
SONG_SEPARATOR = "\n\n"  # between tunes in the training text, as in the course

# ------------------------------------------------------------------------------ pure functions

# A tune ends at a blank line (ABC's own rule) or where the next one's X: header starts.
_BREAK = re.compile(r"\n[ \t]*(?:\n[ \t]*)+|\n(?=X:)")


def extract_songs(text: str, complete_only: bool = False) -> list[str]:
    """The tunes in ``text``, each stripped of surrounding white space.

    Tunes are split at blank lines and before ``X:`` headers. A piece that does not start with
    ``X:`` continues the tune before it (irish.abc has two tunes with a blank line inside; they
    are rejoined without it); a piece before any header is a tune of its own (generated text
    may begin without one). ``complete_only`` drops the last piece unless a blank line or a
    header follows it: sampled text is cut off mid-tune, as the course's regex assumes.
    """
    pieces = _BREAK.split(text)
    if complete_only:
        pieces = pieces[:-1]  # the text after the last break ('' if the text ends with one)
    songs: list[str] = []
    for piece in pieces:
        piece = piece.strip()
        if not piece:
            continue
        if piece.startswith("X:") or not songs:
            songs.append(piece)
        else:
            songs[-1] += "\n" + piece
    return songs


def song_title(song: str) -> str:
    """The first ``T:`` header of a tune, or '' if it has none."""
    match = re.search(r"^T:[ \t]*(.*)$", song, flags=re.MULTILINE)
    return match.group(1).strip() if match else ""


def build_vocab(songs: list[str]) -> list[str]:
    """The sorted distinct characters of the training text (the songs joined by blank lines)."""
    return sorted(set(SONG_SEPARATOR.join(songs)))


def vectorize(text: str, vocab: list[str]) -> np.ndarray:
    """Each character's index in ``vocab``: int32 [len(text)]; KeyError on a character not in it."""
    index = {char: i for i, char in enumerate(vocab)}
    return np.fromiter((index[c] for c in text), dtype=np.int32, count=len(text))


def devectorize(ids: np.ndarray, vocab: list[str]) -> str:
    """The text of character ids [N] (the inverse of ``vectorize``)."""
    return "".join(vocab[i] for i in np.asarray(ids).reshape(-1))


def get_batch(vectorized: np.ndarray, seq_length: int, batch_size: int,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``batch_size`` random windows of the text: inputs x [B, T] and targets y [B, T], int32,
    with y[b, t] = x[b, t + 1] (the next character). T = seq_length."""
    if len(vectorized) <= seq_length:
        raise ValueError(f"the text has {len(vectorized)} characters: too few for windows of "
                         f"{seq_length} and their next character")
    starts = rng.integers(0, len(vectorized) - seq_length, size=batch_size)          # [B]
    idx = starts[:, None] + np.arange(seq_length)[None, :]                            # [B, T]
    return vectorized[idx].astype(np.int32), vectorized[idx + 1].astype(np.int32)


# --------------------------------------------------------------------------------------- corpora


def _read_irish(path: Path) -> tuple[str, str]:
    """(file, text) of irish.abc at ``path``: the file itself, or a folder holding it."""
    file = path / IRISH_NAME if path.is_dir() else path
    if not file.is_file():
        raise Absent(f"no {IRISH_NAME} there" if path.is_dir() else "no such file or folder")
    return str(file), file.read_text(encoding="utf-8")


def _package_file(package: str, relative: str) -> Path | None:
    """A file inside an installed package, found without importing the package."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        if (Path(folder) / relative).is_file():
            return Path(folder) / relative
    return None


def load_irish(path: str | Path | None = None, *, cache_dir: Path | str | None = None,
               url: str = IRISH_URL, sha256: str = IRISH_SHA256, timeout: float = 60.0,
               download: bool = True) -> tuple[str, str]:
    """(source, text) of the course's irish.abc.

    Sources in order: ``path`` (the file or a folder holding it), ``$LABRUN_DATA_DIR``, the copy
    inside an installed ``mitdeeplearning`` package, ``cache_dir/irish.abc`` (default
    ``~/.cache/labrun``) if its SHA-256 is ``sha256``, then (with ``download``) the download
    from ``url``, checked and cached. DataUnavailable, listing each source and why it failed.
    """
    tried: list[str] = []
    found = find_local(path, _read_irish, tried)
    if found is not None:
        return found
    packaged = _package_file("mitdeeplearning", f"data/{IRISH_NAME}")
    if packaged is not None:
        return str(packaged), packaged.read_text(encoding="utf-8")
    tried.append("package mitdeeplearning: not installed")
    fetched = fetch_verified(IRISH_NAME, url, sha256, tried, cache_dir=cache_dir, timeout=timeout,
                             download=download)
    if fetched is not None:
        return fetched[0], fetched[1].decode("utf-8")
    if not download:
        tried.append("download: not tried (offline sources only)")
    raise DataUnavailable(
        f"{IRISH_NAME} is not available. Tried, in order:\n  - " + "\n  - ".join(tried)
        + f"\nTo fix: set {DATA_DIR_ENV} to a folder holding {IRISH_NAME}, set the config's "
          f"data_path, or use corpus 'music21' (O'Neill's tunes, bundled with music21).")


def load_music21_corpus(name: str = MUSIC21_CORPUS) -> tuple[str, str]:
    """(source, text) of a folder of ABC files in music21's bundled corpus (O'Neill's 1850 tunes
    by default): the files' raw text in name order, not parsed."""
    spec = importlib.util.find_spec("music21")  # found, not imported: importing takes seconds
    root = Path(spec.submodule_search_locations[0]) / "corpus" / name if spec else None
    if root is None or not root.is_dir():
        raise DataUnavailable(f"music21's corpus {name!r} is not installed (looked in {root})")
    files = sorted(root.glob("*.abc"))
    if not files:
        raise DataUnavailable(f"{root}: no .abc files")
    return str(root), "\n\n".join(f.read_text(encoding="latin-1") for f in files)


def load_songs(corpus: str, data_path: str | None = None, *, max_songs: int | None = None,
               cache_dir: Path | str | None = None, url: str = IRISH_URL) -> tuple[str, list[str]]:
    """(source, tunes) of a MusicConfig's corpus: 'irish', 'music21', or 'auto' (irish.abc from
    any source but the download, else music21's). A data_path given must hold irish.abc."""
    if corpus == "music21":
        source, text = load_music21_corpus()
    elif corpus == "irish" or data_path:
        source, text = load_irish(data_path, cache_dir=cache_dir, url=url)
    elif corpus == "auto":
        try:
            source, text = load_irish(None, cache_dir=cache_dir, url=url, download=False)
        except DataUnavailable:
            source, text = load_music21_corpus()
    else:
        raise ValueError(f"corpus: expected 'auto', 'irish' or 'music21', got {corpus!r}")
    songs = extract_songs(text)[:max_songs]
    if not songs:
        raise DataUnavailable(f"{source}: no tunes in it")
    return source, songs
