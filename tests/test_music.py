"""The music lab: the ABC corpora, the text maths, validity, audio, MusicLab, `labrun generate`.

Nothing here touches the network: the download is pointed at file:// URLs or a closed port.
Real irish.abc is read from $LABRUN_DATA_DIR (../shared/data, see conftest); the tests that need
it are skipped, saying why, without it.
"""

from __future__ import annotations

import json
import os
import stat
import wave
from pathlib import Path

import numpy as np
import pytest

from cluster.labs import load
from helpers import run_cli
from supervised import tunes
from supervised.config import MusicConfig
from supervised.data import DATA_DIR_ENV, DataUnavailable, sha256_hex
from supervised.lstm import fused_logits
from supervised.music import MusicLab, build_music_model, sequence_loss
from supervised.music_audio import find_renderer, render_wav, score_notes, synthesize, write_wav
from supervised.music_check import check_tune, drop_repeats, midi_bytes, parse_tune, unshare_marks
from supervised.music_generation import (
    CharRNN,
    Tune,
    find_checkpoint,
    generate_text,
    load_generator,
    sample_songs,
    write_songs,
)
from supervised.tunes import (
    IRISH_SHA256,
    build_vocab,
    devectorize,
    extract_songs,
    get_batch,
    load_irish,
    load_music21_corpus,
    load_songs,
    song_title,
    vectorize,
)

CLOSED_PORT_URL = "http://127.0.0.1:9/irish.abc"  # the discard port: refused at once
TINY = {"embedding_dim": 8, "rnn_units": 32, "seq_length": 20, "batch_size": 8, "max_songs": 60,
        "generation_length": 200, "generate_songs": 2}


IRISH = Path(os.environ.get(DATA_DIR_ENV) or "/nonexistent") / "irish.abc"  # before any monkeypatch


def real_irish() -> Path:
    path = IRISH
    if not path.is_file():
        pytest.skip(f"no real irish.abc at {path}: set {DATA_DIR_ENV} to the folder holding it")
    return path


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """No LABRUN_DATA_DIR, no mitdeeplearning package, an empty cache: (cache_dir, unreachable url)."""
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.setattr(tunes, "_package_file", lambda package, relative: None)
    cache = tmp_path / "cache"
    cache.mkdir()
    return cache, CLOSED_PORT_URL


# ----------------------------------------------------------------------------------- corpora


def test_irish_abc_has_its_804_tunes_and_83_characters(tmp_path):
    path = real_irish()
    source, text = load_irish(cache_dir=tmp_path, url=CLOSED_PORT_URL)          # via the variable
    assert source == str(path) and sha256_hex(text.encode()) == IRISH_SHA256
    songs = extract_songs(text)
    assert len(songs) == 804 == text.count("X:")
    assert all(s.startswith("X:") and "\n\n" not in s for s in songs)          # 2 tunes rejoined
    assert len(build_vocab(songs)) == 83 == len(set(text))
    assert song_title(songs[0]) == "Alexander's"
    assert load_irish(path, url=CLOSED_PORT_URL)[1] == text                      # the file itself
    assert load_irish(path.parent, url=CLOSED_PORT_URL)[1] == text               # its folder
    assert not any(tmp_path.iterdir())                                           # nothing cached


def test_music21_corpus_loads_offline_and_auto_falls_back_to_it(offline):
    cache, url = offline
    source, text = load_music21_corpus()
    songs = extract_songs(text)
    assert source.endswith("oneills1850") and len(songs) > 1000
    assert all(s.startswith("X:") for s in songs)
    assert len({song_title(s) for s in songs}) > 900
    auto_source, auto_songs = load_songs("auto", cache_dir=cache, url=url, max_songs=50)
    assert auto_source == source and auto_songs == songs[:50]


def test_auto_takes_irish_abc_when_at_hand(tmp_path):
    path = real_irish()
    source, songs = load_songs("auto", cache_dir=tmp_path, url=CLOSED_PORT_URL)
    assert source == str(path) and len(songs) == 804


def test_irish_error_lists_every_source_tried(offline, tmp_path):
    cache, url = offline
    nowhere = tmp_path / "nowhere"
    with pytest.raises(DataUnavailable) as err:
        load_songs("irish", str(nowhere), cache_dir=cache, url=url)
    message = str(err.value)
    for part in (f"data_path {nowhere}: no such file or folder", f"{DATA_DIR_ENV}: not set",
                 "package mitdeeplearning: not installed", f"cache {cache / 'irish.abc'}: no such file",
                 f"download {url}: ", "or use corpus 'music21'"):
        assert part in message, (part, message)
    with pytest.raises(DataUnavailable, match="data_path .*nowhere"):  # a given path is not
        load_songs("auto", str(nowhere), cache_dir=cache, url=url)   # silently swapped for music21


def test_irish_download_is_checked_cached_and_reused(offline):
    path = real_irish()
    cache, _ = offline
    source, text = load_irish(cache_dir=cache, url=path.as_uri())
    assert source == path.as_uri() and len(extract_songs(text)) == 804
    assert [p.name for p in cache.iterdir()] == ["irish.abc"]
    source, again = load_irish(cache_dir=cache, url=CLOSED_PORT_URL)
    assert source == str(cache / "irish.abc") and again == text
    (cache / "irish.abc").write_text("X:1\nT:tampered\n")
    with pytest.raises(DataUnavailable, match="SHA-256 .* is not the expected"):
        load_irish(cache_dir=cache, url=CLOSED_PORT_URL)


# --------------------------------------------------------------------------------- text maths


def test_extract_songs_by_hand():
    text = "X:1\nT:a\nabc\n\nX:2\nT:b\nX:3\nK:G\n \n\nfoo\n\n\nX:4\nab"
    assert extract_songs(text) == ["X:1\nT:a\nabc", "X:2\nT:b", "X:3\nK:G\nfoo", "X:4\nab"]
    assert extract_songs(text, complete_only=True) == ["X:1\nT:a\nabc", "X:2\nT:b", "X:3\nK:G\nfoo"]
    assert extract_songs(text + "\n\n", complete_only=True)[-1] == "X:4\nab"
    assert extract_songs("X garbage\nabc\n\nX:2") == ["X garbage\nabc", "X:2"]
    assert extract_songs("no break at all", complete_only=True) == []


def test_vocab_and_round_trip():
    songs = ["X:1\nabc", "X:2\ncab"]
    vocab = build_vocab(songs)
    assert vocab == ["\n", "1", "2", ":", "X", "a", "b", "c"]
    ids = vectorize("\n\n".join(songs), vocab)
    assert ids.dtype == np.int32 and ids[:4].tolist() == [4, 3, 1, 0]
    assert devectorize(ids, vocab) == "X:1\nabc\n\nX:2\ncab"
    with pytest.raises(KeyError):
        vectorize("Z", vocab)


def test_get_batch_targets_are_the_next_characters():
    ids = np.arange(500, dtype=np.int32)  # each window's first id is its offset
    x, y = get_batch(ids, seq_length=20, batch_size=16, rng=np.random.default_rng(3))
    assert x.shape == y.shape == (16, 20) and x.dtype == y.dtype == np.int32
    starts = x[:, 0]
    assert starts.min() >= 0 and starts.max() + 20 < 500 and len(set(starts)) > 1
    np.testing.assert_array_equal(x, starts[:, None] + np.arange(20))
    np.testing.assert_array_equal(y, x + 1)
    x2, _ = get_batch(ids, 20, 16, np.random.default_rng(3))
    np.testing.assert_array_equal(x, x2)                                         # seeded
    text = vectorize("X:1\nT:tune\nabc|def|\n\nX:2\nK:D\nfed|cba|", build_vocab(["X:1\nT:tune\nabc|def|"]
                                                                            + ["X:2\nK:D\nfed|cba|"]))
    x, y = get_batch(text, 10, 4, np.random.default_rng(0))
    for row_x, row_y in zip(x, y):  # each row is somewhere in the text, its target one later
        offsets = [s for s in range(len(text) - 10) if np.array_equal(text[s:s + 10], row_x)]
        assert any(np.array_equal(text[s + 1:s + 11], row_y) for s in offsets)
    with pytest.raises(ValueError, match="too few"):
        get_batch(ids[:20], 20, 1, np.random.default_rng(0))


# ----------------------------------------------------------------------------- validity, audio


def test_check_tune_accepts_a_real_tune_and_says_why_not_otherwise():
    text = real_irish().read_text()
    assert check_tune(extract_songs(text)[0]) == (True, "ok")
    for garbage, reason in (("garbage!!", "music21 cannot parse it"), ("", "empty"),
                            ("X:1\nT:silent\nK:C\n", "no notes")):
        ok, why = check_tune(garbage)
        assert not ok and reason in why, (garbage, why)


def _midi_notes(abc: str) -> int:
    """How many notes the MIDI written for ``abc`` holds, read back by music21."""
    from music21 import converter

    return len(converter.parseData(midi_bytes(parse_tune(abc)), format="midi").flatten().notes)


def test_an_overfull_bar_is_written_as_midi_with_all_its_notes():
    # Bar 4 holds 7 eighths in 6/8 (as in O'Neill's no. 195): music21's reader shares one
    # TimeSignature object between two measures there and its MIDI writer then fails.
    from music21 import converter

    abc = "X:1\nT:overfull\nM:6/8\nL:1/8\nK:D\nG2 F G2 A|d2 c AGF|B2 B2 A2 G|A3 ABc|d6|]\n"
    raw = converter.parseData(abc, format="abc")
    assert unshare_marks(raw) >= 1                     # the shared mark is there ...
    assert check_tune(abc) == (True, "ok")             # ... and no longer stops the MIDI
    assert _midi_notes(abc) == 4 + 5 + 4 + 4 + 1   # every note, the overfull bar's too


def test_repeats_that_cannot_be_unfolded_play_straight_through():
    closed = "X:1\nT:t\nM:4/4\nL:1/4\nK:G\n|: GABc | dcBA :| gfed | cBAG |]\n"
    assert _midi_notes(closed) == 8 + 8 + 8            # well-formed repeats are unfolded
    # A |: never closed, after first and second endings: music21 cannot unfold it.
    unclosed = "X:1\nT:t\nM:4/4\nL:1/4\nK:G\n|: GABc |1 dcBA :|2 dBGA || |: gfed | cBAG |]\n"
    assert check_tune(unclosed) == (True, "ok")
    assert _midi_notes(unclosed) == 5 * 4              # every bar once, both endings included
    score = parse_tune(unclosed)
    assert drop_repeats(score) == 5 and not list(score.recurse().getElementsByClass("RepeatBracket"))


def test_synthesiser_renders_the_notes_at_their_times(tmp_path):
    samples = synthesize([(440.0, 0.0, 0.5), (660.0, 0.5, 0.75)], rate=22_050)
    assert samples.dtype == np.float32 and len(samples) == round(1.25 * 22_050)
    assert 0.5 < np.abs(samples).max() <= 1.0
    for lo, hi, freq in ((0, 11_025, 440), (11_025, len(samples), 660)):
        spectrum = np.abs(np.fft.rfft(samples[lo:hi]))
        assert abs(np.argmax(spectrum) * 22_050 / (hi - lo) - freq) < 3
    write_wav(tmp_path / "a.wav", samples)
    with wave.open(str(tmp_path / "a.wav")) as f:
        assert (f.getframerate(), f.getnchannels(), f.getsampwidth()) == (22_050, 1, 2)
        assert f.getnframes() / f.getframerate() == pytest.approx(1.25, abs=1e-4)
    score = parse_tune(extract_songs(real_irish().read_text())[0])
    notes = score_notes(score)
    end = max(e["endTimeSeconds"] for e in score.flatten().secondsMap)
    assert len(notes) == len(score.flatten().notes) and max(s + d for _, s, d in notes) == pytest.approx(end)


def write_fake_player(folder: Path, name: str, works: bool) -> None:
    """An executable ``name`` that writes its -o/-F argument as a small WAV (or fails)."""
    body = ('for a; do [ "$prev" = -o ] || [ "$prev" = -F ] && out="$a"; prev="$a"; done\n'
            'printf "%1000s" "" > "$out"\n') if works else "exit 3\n"
    script = folder / name
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


def test_write_songs_renders_valid_tunes_with_whatever_is_at_hand(tmp_path, monkeypatch):
    good = extract_songs(real_irish().read_text())[1]
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))                          # no player at all
    assert find_renderer() == "builtin"
    reports = write_songs(tmp_path / "a", [Tune(good, True), Tune("X:1\nbad", False)])
    assert [(r.name, r.valid, r.complete, r.renderer) for r in reports] == [
        ("song_01", True, True, "builtin"), ("song_02", False, False, None)]
    assert [(r.strict_valid, r.strict_reason) for r in reports] == [
        (True, "ok"), (False, "line 2: 'bad' before the K: field (no K: header)")]
    assert reports[0].title == "An Buachaill Dreoite" and "music21" in reports[1].reason
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [
        "song_01.abc", "song_01.mid", "song_01.wav", "song_02.abc"]
    assert (tmp_path / "a" / "song_01.mid").read_bytes()[:4] == b"MThd"
    with wave.open(str(tmp_path / "a" / "song_01.wav")) as f:
        assert f.getframerate() == 22_050 and f.getnframes() > 22_050
    (tmp_path / "bin").mkdir()
    write_fake_player(tmp_path / "bin", "timidity", works=True)
    assert find_renderer() == "timidity"
    score, midi = parse_tune(good), tmp_path / "a" / "song_01.mid"
    assert render_wav(score, midi, tmp_path / "t.wav", "timidity") == "timidity"
    assert (tmp_path / "t.wav").stat().st_size == 1000
    write_fake_player(tmp_path / "bin", "timidity", works=False)               # falls back
    assert render_wav(score, midi, tmp_path / "f.wav", "timidity") == "builtin"
    with wave.open(str(tmp_path / "f.wav")) as f:
        assert f.getnframes() > 22_050


# ------------------------------------------------------------------------------- model, lab


def test_numpy_generator_matches_the_keras_model():
    model = build_music_model(vocab_size=12, embedding_dim=8, rnn_units=16, seed=0)
    ids = np.array([[1, 5, 3, 7, 11, 0]], np.int32)
    logits = model(ids).numpy()[0]                                              # [T, V]
    rnn = CharRNN.from_weights(model.get_weights())
    h = c = np.zeros(16, np.float32)
    ours = []
    for char in ids[0]:
        out, h, c = rnn.step(int(char), h, c)
        ours.append(out)
    np.testing.assert_allclose(np.array(ours), logits, atol=1e-5)
    vocab = list("X:abcdefg\n |")
    a, b = (generate_text(rnn, vocab, "X:", 50, 1.0, seed=4) for _ in range(2))
    assert a == b and len(a) == 52 and a.startswith("X:") and set(a) <= set(vocab)
    assert generate_text(rnn, vocab, "X:", 50, 1.0, seed=5) != a
    with pytest.raises(ValueError, match="not in it: \\['Z'\\]"):
        generate_text(rnn, vocab, "XZ", 5)


def test_fused_lstm_gives_keras_logits_and_gradients():
    import tensorflow as tf

    model = build_music_model(vocab_size=11, embedding_dim=6, rnn_units=16, seed=3)
    ids = tf.constant(np.random.default_rng(0).integers(0, 11, (4, 9)), tf.int32)  # [B, T]
    targets = tf.roll(ids, -1, axis=1)
    grads = []
    for forward in (lambda x: model(x), lambda x: fused_logits(model, x)):
        with tf.GradientTape() as tape:
            logits = forward(ids)
            loss = sequence_loss(targets, logits)
        grads.append((logits.numpy(), [tf.convert_to_tensor(g).numpy()
                                       for g in tape.gradient(loss, model.trainable_variables)]))
    (keras_logits, keras_grads), (fused, fused_grads) = grads
    np.testing.assert_allclose(fused, keras_logits, atol=1e-5)
    assert len(fused_grads) == 6  # embedding, kernel, recurrent kernel, bias, dense kernel, bias
    for ours, theirs in zip(fused_grads, keras_grads):
        assert np.abs(theirs).max() > 0
        np.testing.assert_allclose(ours, theirs, atol=1e-6 + 1e-4 * np.abs(theirs).max())


def test_fused_lstm_needs_a_static_window():
    import tensorflow as tf

    model = build_music_model(vocab_size=5, embedding_dim=4, rnn_units=8, seed=0)
    trace = tf.function(lambda x: fused_logits(model, x),
                        input_signature=(tf.TensorSpec([None, None], tf.int32),))
    with pytest.raises(ValueError, match="static number of time steps"):
        trace(np.zeros((2, 3), np.int32))


@pytest.mark.parametrize("kernel", ["fused", "keras"])
def test_both_lstm_kernels_train_the_same_model(kernel):
    real_irish()
    cfg = MusicConfig(corpus="irish", epochs=1, steps_per_epoch=5, lstm_kernel=kernel, **TINY)
    lab = MusicLab(cfg, seed=0)
    assert lab.fused == (kernel == "fused")
    loss = lab.train_epoch()["train/loss"]
    auto = MusicLab(MusicConfig(corpus="irish", epochs=1, steps_per_epoch=5, **TINY), seed=0)
    assert auto.fused  # no GPU here: auto is the fused kernel
    # Same batches, same start: the same mean loss over the steps (Adam turns rounding-sized
    # gradient differences into whole steps for weights whose gradient is ~0, so the weights
    # themselves drift apart by up to lr per step; the loss does not).
    assert auto.train_epoch()["train/loss"] == pytest.approx(loss, rel=1e-3)


def test_tiny_lab_learns_saves_restores_and_generates_from_its_checkpoint(tmp_path):
    real_irish()
    cfg = MusicConfig(corpus="irish", epochs=2, steps_per_epoch=60, lr=1e-2, **TINY)
    lab = MusicLab(cfg, seed=0)
    assert lab.texts() == {} and lab.audio() == {} and len(lab.vocab) > 40
    history = [lab.train_epoch() for _ in range(2)]
    for metrics in history:
        assert tuple(metrics) == MusicLab.METRICS and all(type(v) is float for v in metrics.values())
    assert history[1]["train/loss"] < history[0]["train/loss"] < np.log(len(lab.vocab)) + 0.5
    assert history[1]["train/perplexity"] == pytest.approx(np.exp(history[1]["train/loss"]))
    assert history[1]["generate/songs"] == 2 and history[1]["generate/epoch"] == 2
    assert 0 <= history[1]["generate/valid_share"] <= 1
    assert 0 <= history[1]["generate/strict_valid_share"] <= 1
    assert [len(t) for t in lab.sample["tunes"]] == [6, 6]  # abc, complete, music21's, strict
    assert "after epoch 2" in lab.texts()["music/generated"] and "strict" in lab.texts()["music/generated"]
    lab.save(tmp_path)
    assert json.loads((tmp_path / "vocab.json").read_text()) == lab.vocab

    fresh = MusicLab(cfg, seed=0)
    fresh.restore(tmp_path)
    assert fresh.epoch == 2 and fresh.sample == lab.sample and fresh.texts() == lab.texts()
    state = json.loads((tmp_path / "state.json").read_text())  # a sample saved before the
    state["sample"]["tunes"] = [t[:4] for t in state["sample"]["tunes"]]  # strict judge: judged
    (tmp_path / "state.json").write_text(json.dumps(state))   # when restored
    fresh.restore(tmp_path)
    assert fresh.sample == lab.sample
    for a, b in zip(lab.model.get_weights(), fresh.model.get_weights()):
        np.testing.assert_array_equal(a, b)

    assert find_checkpoint(tmp_path) == tmp_path
    rnn, vocab, counters = load_generator(tmp_path)  # the folder alone, no config
    assert vocab == lab.vocab and counters["epoch"] == 2
    text = generate_text(rnn, vocab, "X", 300, seed=1)
    assert text == generate_text(lab.model, lab.vocab, "X", 300, seed=1)
    songs = extract_songs(text)
    squeeze = lambda s: "".join(s.split())  # noqa: E731 - extraction strips each piece
    assert songs and squeeze("".join(songs)) in squeeze(text)
    ok, reason = check_tune(songs[0])
    assert isinstance(ok, bool) and reason
    tunes = sample_songs(rnn, vocab, 3, length=120, seed=2)
    assert len(tunes) == 3 and all(t.abc for t in tunes)


def test_lab_audio_plays_the_first_valid_tune(tmp_path):
    songs = extract_songs(real_irish().read_text())
    lab = MusicLab(MusicConfig(corpus="irish", **TINY), seed=0)
    lab.sample = {"epoch": 1, "tunes": [["X:1\nbad", True, False, "no"], [songs[2], True, True, "ok"]]}
    ((name, (samples, rate)),) = lab.audio().items()
    assert name == "music/first_valid" and rate == 22_050 and samples.dtype == np.float32
    assert np.abs(samples).max() <= 1 and len(samples) > 5 * rate


def test_music_config_is_the_courses():
    lab, cfg = load("configs/music.yaml")
    m = cfg.music
    assert lab.name == "music" and m.corpus == "auto"
    assert (m.seq_length, m.batch_size, m.embedding_dim, m.rnn_units, m.lr) == (100, 8, 256, 1024, 5e-3)
    assert m.epochs * m.steps_per_epoch == 3000


# ------------------------------------------------------------------------------------ the CLI


def test_generate_without_a_checkpoint_exits_2(tmp_path):
    out = run_cli("generate", str(tmp_path), "--songs", "2")
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip().splitlines() == [
        f"error: {tmp_path}: no music checkpoint in it (a folder with weights.npz or weights.pt, "
        f"state.json and vocab.json); train one with `labrun train configs/music.yaml`"]


@pytest.mark.slow
def test_train_then_generate_through_the_cli(ray_address, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    real_irish()
    sets = [f"music.{k}={v}" for k, v in TINY.items()] + [
        "music.epochs=2", "music.steps_per_epoch=30", "trial.gpus=0"]
    out = run_cli("train", "configs/music.yaml", "--address", ray_address, "--runs-dir",
                  str(tmp_path / "runs"), *[a for s in sets for a in ("--set", s)])
    assert out.returncode == 0, out.stdout + out.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    (trial,) = [p for p in run_dir.iterdir() if (p / "result.json").exists()]
    rows = [json.loads(line) for line in (trial / "result.json").read_text().splitlines()]
    assert [r["counters/epoch"] for r in rows] == [1, 2]
    assert all(np.isfinite(r["train/loss"]) and r["generate/songs"] == 2 for r in rows)
    summaries = EventAccumulator(str(trial / "images"), size_guidance={"tensors": 0})
    summaries.Reload()
    assert any(tag.startswith("music/generated") for tag in summaries.Tags()["tensors"])

    songs = tmp_path / "songs"
    out = run_cli("generate", str(run_dir), "--songs", "2", "--length", "150", "--out", str(songs))
    assert out.returncode == 0, out.stdout + out.stderr
    assert sorted(p.name for p in songs.glob("*.abc")) == ["song_01.abc", "song_02.abc"]
    assert "checkpoint_000001" in out.stdout and "song_02" in out.stdout
    assert "valid (music21):" in out.stdout and "strictly valid" in out.stdout and "of 2" in out.stdout
    for song in songs.glob("*.abc"):  # a .mid exactly for the tunes music21 accepts
        assert (song.with_suffix(".mid").exists()) == check_tune(song.read_text())[0]


def test_trial_summaries_hold_the_labs_text_and_audio(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from cluster.tuning.trainable import TrialSummaries
    from supervised.lab import Lab

    class Runner:  # what MusicLab offers after a sample; labs without texts/audio are skipped
        def images(self):
            return {}

        def texts(self):
            return {"music/generated": "**tune 1**: ok"}

        def audio(self):
            return {"music/first_valid": (synthesize([(440.0, 0.0, 0.5)]), 22_050)}

    writer = TrialSummaries(tmp_path, "music")
    writer.write(Runner(), step=3)
    class Plain(Lab):   # a lab with images only: the contract's defaults, no texts, no audio
        def images(self):
            return {}

    writer.write(Plain(), step=4)
    writer.close()
    events = EventAccumulator(str(tmp_path), size_guidance={"audio": 0, "tensors": 0})
    events.Reload()
    (clip,) = events.Audio("music/first_valid")
    assert clip.step == 3 and clip.sample_rate == 22_050 and clip.length_frames == 11_025
    assert clip.encoded_audio_string[:4] == b"RIFF" and clip.content_type == "audio/wav"
    (text,) = events.Tensors("music/generated/text_summary")
    assert text.step == 3 and b"tune 1" in text.tensor_proto.string_val[0]
