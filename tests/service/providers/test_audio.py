"""AudioProvider on a committed espeak-ng clip, transcribed with the bundled Whisper base model.

tests/fixtures/speech.wav was made once with
`espeak-ng -v en-us -s 120 -g 2 "The quick brown fox jumps over the lazy dog."`, resampled to
16 kHz mono and padded with 0.5 s of silence at each end; espeak-ng is not needed to run these.
"""

from __future__ import annotations

import dataclasses
import wave
from pathlib import Path

import av
import ctranslate2
import pytest

from percolate_reading.config import Device
from percolate_reading.errors import ConfigError, CorruptDocumentError, DocumentTooLargeError
from percolate_reading.parse.document import BlockKind
from percolate_reading.parse.providers.audio import (
    NO_SPEECH_WARNING,
    AudioProvider,
    decode_audio,
    resolve_device,
)
from percolate_reading.parse.providers.base import ParseOptions
from percolate_reading.parse.render.elements import build_elements
from tests.textmetrics import missing_words, word_error_rate, words

pytestmark = pytest.mark.audio

SPEECH = Path(__file__).resolve().parents[2] / "fixtures" / "speech.wav"
REFERENCE = "The quick brown fox jumps over the lazy dog."
OPTIONS = ParseOptions(device=Device.CPU, whisper_model="base", whisper_compute_type="int8")


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> AudioProvider:
    return AudioProvider(model_cache_dir=tmp_path_factory.mktemp("models"))


def test_transcribes_the_sentence(provider: AudioProvider) -> None:
    doc = provider.parse(SPEECH, "speech.wav", OPTIONS)
    segments = [b for b in doc.blocks if b.kind is BlockKind.TRANSCRIPT_SEGMENT]
    assert segments
    assert len(segments) == len(doc.blocks)
    transcript = " ".join(s.text for s in segments)
    # What matters, not one model build's exact tokens: at most 3 of the 9 words wrong (builds
    # have heard "a quick brown fox" and "a quick round fox jump" in this robotic espeak-ng
    # voice; a wrong sample rate or a broken decoder gets most words wrong), the key words
    # present and in the spoken order.
    assert word_error_rate(REFERENCE, transcript) <= 3 / 9, transcript
    assert missing_words("quick fox over lazy dog", transcript) == [], transcript
    heard = words(transcript)
    assert heard.index("quick") < heard.index("fox") < heard.index("lazy") < heard.index("dog")
    assert doc.metadata["segment_languages"] == ["en"] * len(segments)
    previous_end = 0.0
    for seg in segments:
        assert seg.start is not None
        assert seg.end is not None
        assert previous_end <= seg.start < seg.end <= doc.metadata["duration_s"] + 0.5
        previous_end = seg.end
    assert doc.metadata["language"] == "en"
    assert 5.0 < doc.metadata["duration_s"] < 6.5
    assert doc.metadata["device"] == "cpu"
    assert doc.metadata["compute_type"] == "int8"
    assert doc.metadata["model"] == "base"
    assert doc.warnings == []


def test_silence_warns_no_speech(provider: AudioProvider, tmp_path: Path) -> None:
    silent = tmp_path / "silence.wav"
    with wave.open(str(silent), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
        w.writeframes(b"\x00\x00" * 16_000 * 3)
    doc = provider.parse(silent, "silence.wav", OPTIONS)
    assert doc.blocks == []
    assert doc.warnings == [NO_SPEECH_WARNING]


def test_corrupt_audio_is_rejected(provider: AudioProvider, tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(b"ID3\x04\x00\x00\x00\x00\x00\x00" + bytes(range(256)) * 20)
    with pytest.raises(CorruptDocumentError, match=r"bad\.mp3"):
        provider.parse(bad, "bad.mp3", OPTIONS)


def test_truncated_wav_header_is_rejected(provider: AudioProvider, tmp_path: Path) -> None:
    bad = tmp_path / "short.wav"
    bad.write_bytes(SPEECH.read_bytes()[:30])
    with pytest.raises(CorruptDocumentError):
        provider.parse(bad, "short.wav", OPTIONS)


def test_duration_cap(tmp_path: Path) -> None:
    capped = AudioProvider(model_cache_dir=tmp_path, max_duration_s=2.0)
    with pytest.raises(DocumentTooLargeError, match="2 s cap"):
        capped.parse(SPEECH, "speech.wav", OPTIONS)


def _encode(src: Path, dest: Path, container: str, codec: str, rate: int) -> None:
    """Re-encode the speech clip with PyAV (FFmpeg's encoders ship in its wheel)."""
    with av.open(str(src)) as inp, av.open(str(dest), "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        resampler = av.AudioResampler(format=stream.format.name, layout="mono", rate=rate)
        for frame in inp.decode(audio=0):
            for f in resampler.resample(frame):
                for packet in stream.encode(f):
                    out.mux(packet)
        for f in resampler.resample(None):
            for packet in stream.encode(f):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


@pytest.mark.parametrize(
    ("suffix", "container", "codec", "rate"),
    [
        ("flac", "flac", "flac", 16_000),
        ("mp3", "mp3", "libmp3lame", 22_050),
        ("m4a", "ipod", "aac", 44_100),
        ("ogg", "ogg", "libopus", 48_000),
    ],
)
def test_compressed_formats_decode_to_16k_mono(
    tmp_path: Path, suffix: str, container: str, codec: str, rate: int
) -> None:
    path = tmp_path / f"speech.{suffix}"
    _encode(SPEECH, path, container, codec, rate)
    pcm = decode_audio(path, max_duration_s=60)
    assert pcm.dtype.name == "float32"
    # Same clip, same length at 16 kHz (encoders add up to a few frames of padding).
    assert abs(pcm.size / 16_000 - 5.83) < 0.15
    assert 0.05 < float(abs(pcm).max()) <= 1.0


def test_flac_transcribes(provider: AudioProvider, tmp_path: Path) -> None:
    path = tmp_path / "speech.flac"
    _encode(SPEECH, path, "flac", "flac", 16_000)
    doc = provider.parse(path, "speech.flac", OPTIONS)
    assert "lazy dog" in doc.text().lower()


def test_device_selection() -> None:
    gpus = ctranslate2.get_cuda_device_count()
    assert resolve_device(Device.CPU) == "cpu"
    assert resolve_device(Device.AUTO) == ("cuda" if gpus else "cpu")
    if gpus:
        assert resolve_device(Device.CUDA) == "cuda"
    else:
        with pytest.raises(ConfigError, match="no CUDA device"):
            resolve_device(Device.CUDA)


# Made once with espeak-ng (-s 130): "The weather report for today. It will be sunny in the
# morning and cloudy in the evening." (en-us), 0.7 s of silence, "Guten Morgen. Heute ist das
# Wetter schön, und am Abend regnet es in Berlin." (de); Opus in Ogg, 40 kB.
MIXED = SPEECH.with_name("speech-en-de.ogg")


def test_a_recording_that_switches_language(provider: AudioProvider) -> None:
    doc = provider.parse(MIXED, "speech-en-de.ogg", dataclasses.replace(OPTIONS, language="multi"))
    segments = [b for b in doc.blocks if b.kind is BlockKind.TRANSCRIPT_SEGMENT]
    text = " ".join(s.text for s in segments).lower()
    for word in ("weather", "sunny", "morning", "evening"):
        assert word in text
    # The German half is transcribed, not dropped or replaced by repeated English.
    german = segments[-1].text.lower()
    assert "morgen" in german
    assert "berlin" in german
    assert "weather" not in german
    languages = doc.metadata["segment_languages"]
    assert len(languages) == len(segments)
    assert languages[0] == "en"
    # Labelled German, not a low-resource neighbour (Whisper base alone hears Latin, `la`).
    assert languages[-1] == "de"
    assert doc.metadata["language"] in doc.metadata["languages"]
    assert any("switches language" in w for w in doc.warnings)


@pytest.mark.slow  # ~10 s of Whisper on a quiet core
def test_expected_languages_label_each_segment(provider: AudioProvider) -> None:
    doc = provider.parse(MIXED, "speech-en-de.ogg", dataclasses.replace(OPTIONS, language="en,de"))
    segments = [b for b in doc.blocks if b.kind is BlockKind.TRANSCRIPT_SEGMENT]
    languages = doc.metadata["segment_languages"]
    assert set(languages) == {"en", "de"}
    assert languages[0] == "en"
    assert languages[-1] == "de"
    assert "weather" in segments[0].text.lower()
    assert "berlin" in segments[-1].text.lower()
    assert set(doc.metadata["languages"]) == {"en", "de"}
    # elements.jsonl carries each segment's own language.
    said = [e["language"] for e in build_elements(doc) if e["type"] == "transcript_segment"]
    assert said == languages
    assert any("switches language" in w and "de:" in w for w in doc.warnings)


def test_a_given_language_is_used_for_every_segment(provider: AudioProvider) -> None:
    doc = provider.parse(SPEECH, "speech.wav", dataclasses.replace(OPTIONS, language="en"))
    assert set(doc.metadata["segment_languages"]) == {"en"}
    assert doc.warnings == []
