"""Audio provider: WAV/FLAC/MP3/M4A/OGG -> timed transcript segments via faster-whisper.

Audio is decoded here with PyAV (the decoder faster-whisper itself uses) rather than by
faster-whisper, so that undecodable input becomes a typed CorruptDocumentError and the duration
cap is enforced while decoding, before a hostile file's PCM fills the sandbox's memory.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from percolate_reading.config import Device, Settings, default_model_cache_dir
from percolate_reading.contract.languages import expected_languages, normalize_language
from percolate_reading.errors import (
    ConfigError,
    CorruptDocumentError,
    DocumentTooLargeError,
    EmptyDocumentError,
)
from percolate_reading.parse.cpus import thread_budget
from percolate_reading.parse.document import Block, BlockKind, DocumentType, ParsedDocument
from percolate_reading.parse.providers.base import ParseOptions
from percolate_reading.parse.providers.whisper_model import resolve_whisper_model

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

SAMPLE_RATE = 16_000  # what Whisper expects
DEFAULT_MAX_DURATION_S = 2 * 3600.0
NO_SPEECH_WARNING = "no speech detected"


def _require_faster_whisper() -> Any:
    try:
        import faster_whisper
    except ImportError as exc:
        raise ImportError(
            "audio parsing needs faster-whisper: install percolate-reading[audio,audio-model]",
            name=exc.name,
        ) from exc
    return faster_whisper


def resolve_device(device: Device) -> str:
    """cpu|cuda for CTranslate2. AUTO picks cuda only when CTranslate2 sees a GPU."""
    import ctranslate2

    gpus = ctranslate2.get_cuda_device_count()
    if device is Device.AUTO:
        return "cuda" if gpus > 0 else "cpu"
    if device is Device.CUDA and gpus == 0:
        raise ConfigError(
            "device=cuda was requested but CTranslate2 sees no CUDA device "
            "(no GPU, driver or CUDA libraries); use device=cpu or device=auto"
        )
    return device.value


@functools.lru_cache(maxsize=2)
def _load_model(model_dir: str, device: str, compute_type: str) -> Any:
    # One model per (dir, device, compute type) per process: loading costs ~1 s and ~150 MB,
    # and the model is read-only, so a worker's parses share it. Its CPU threads: the parse's
    # share (set once per process), else 0, CTranslate2's default (4, or OMP_NUM_THREADS).
    faster_whisper = _require_faster_whisper()
    return faster_whisper.WhisperModel(
        model_dir,
        device=device,
        compute_type=compute_type,
        cpu_threads=thread_budget() or 0,
        local_files_only=True,
    )


def decode_audio(
    path: Path, max_duration_s: float, source_name: str | None = None
) -> npt.NDArray[np.float32]:
    """Decode any PyAV-readable audio to 16 kHz mono float32, enforcing the duration cap;
    errors name `source_name` (the upload), never the scratch path."""
    name = source_name or path.name
    import av
    import numpy as np

    max_samples = int(max_duration_s * SAMPLE_RATE)
    chunks: list[npt.NDArray[Any]] = []  # s16 frames
    n = 0
    try:
        with av.open(str(path), mode="r", metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise CorruptDocumentError(f"{name}: no audio stream")
            stream = container.streams.audio[0]
            declared = (
                float(stream.duration * stream.time_base)
                if stream.duration is not None and stream.time_base is not None
                else None
            )
            if declared is not None and declared > max_duration_s:
                raise DocumentTooLargeError(
                    f"audio is {declared:.0f} s long, over the {max_duration_s:.0f} s cap"
                )
            resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    arr = out.to_ndarray().reshape(-1)
                    n += arr.size
                    if n > max_samples:
                        # Metadata can lie; the decoded length cannot.
                        raise DocumentTooLargeError(
                            f"audio runs past the {max_duration_s:.0f} s cap while decoding"
                        )
                    chunks.append(arr)
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except av.FFmpegError as exc:
        raise CorruptDocumentError(f"{name}: audio cannot be decoded ({exc})") from exc
    if not chunks:
        raise EmptyDocumentError(f"{name}: the audio stream has no samples")
    # Few full-length copies alive at once: a 2 h file is 230 MB as int16, 460 MB as float32.
    pcm16 = np.concatenate(chunks)
    chunks.clear()
    pcm = pcm16.astype(np.float32)
    del pcm16
    pcm *= np.float32(1 / 32768)
    return pcm


# Languages Whisper was trained on with plenty of speech: what a mixed recording's segment may
# be labelled when the request names none. Per-segment detection on a few seconds of audio
# otherwise drifts to low-resource neighbours (German heard as Latin, `la`).
_WELL_TRAINED = (
    "en zh de es ru ko fr ja pt tr pl ca nl ar sv it id hi fi vi he uk el ms cs ro da hu ta no th ur hr bg"
)
WELL_TRAINED_LANGUAGES = frozenset(_WELL_TRAINED.split())


def segment_language(
    model: Any,
    pcm: npt.NDArray[np.float32],
    span: tuple[float, float],
    fallback: str,
    allowed: frozenset[str] = WELL_TRAINED_LANGUAGES,
) -> str:
    """The most probable language among `allowed` for one segment, detected on its own audio."""
    start, end = span
    clip = pcm[int(start * SAMPLE_RATE) : max(int(end * SAMPLE_RATE), int(start * SAMPLE_RATE) + 1)]
    if clip.size < SAMPLE_RATE // 2:  # too short to tell
        return fallback
    _language, _probability, probabilities = model.detect_language(audio=clip)
    ranked = [str(lang) for lang, _p in sorted(probabilities, key=lambda lp: -float(lp[1]))]
    return next((lang for lang in ranked if lang in allowed), fallback)


@dataclass(frozen=True)
class AudioProvider:
    """faster-whisper transcription with VAD; one model per process, chosen by the options."""

    model_cache_dir: Path | None = None
    max_duration_s: float = DEFAULT_MAX_DURATION_S
    doc_type = DocumentType.AUDIO  # a class attribute, not a field

    @classmethod
    def from_settings(cls, settings: Settings) -> AudioProvider:
        return cls(model_cache_dir=settings.model_cache_dir, max_duration_s=settings.audio_max_duration_s)

    def parse(self, path: Path, source_name: str, options: ParseOptions) -> ParsedDocument:
        _require_faster_whisper()
        doc = ParsedDocument(source_name=source_name, doc_type=DocumentType.AUDIO)

        t0 = time.perf_counter()
        pcm = decode_audio(path, self.max_duration_s, source_name)
        t1 = time.perf_counter()
        doc.timings["decode"] = t1 - t0

        device = resolve_device(options.device)
        model_dir = resolve_whisper_model(
            options.whisper_model, self.model_cache_dir or default_model_cache_dir()
        )
        model = _load_model(str(model_dir), device, options.whisper_compute_type)
        t2 = time.perf_counter()
        doc.timings["load_model"] = t2 - t1

        # language="multi": a recording that switches language (English, then German). Each
        # window is language-detected and none is conditioned on the previous one's text
        # (which made Whisper repeat English text). Opt-in: on single-language speech it reads
        # worse with the base model (the test clip: 0 -> 33% word errors).
        # language="en,de" names the languages to expect (each segment is labelled one of them).
        language = normalize_language(options.language) if options.language else None
        multilingual, named = expected_languages(language or options.language)
        allowed = frozenset(named) or WELL_TRAINED_LANGUAGES
        segments, info = model.transcribe(
            pcm,
            language=None if multilingual else (language or options.language),
            vad_filter=True,
            beam_size=5,
            multilingual=multilingual,
            condition_on_previous_text=not multilingual,
        )
        languages: list[str] = []
        keep = not multilingual or not named or info.language in allowed
        fallback = info.language if keep else named[0]
        # `segments` is lazy: iterating it is the transcription.
        for seg in segments:
            text = seg.text.strip()
            if text:
                start, end = round(float(seg.start), 3), round(float(seg.end), 3)
                lang = (
                    segment_language(model, pcm, (start, end), fallback, allowed)
                    if multilingual
                    else fallback
                )
                languages.append(lang)
                # Each segment's own language reaches elements.jsonl (a mixed recording's differ).
                segment = Block(BlockKind.TRANSCRIPT_SEGMENT, text=text, start=start, end=end, language=lang)
                doc.blocks.append(segment)
        doc.timings["transcribe"] = time.perf_counter() - t2
        spoken: dict[str, float] = {}
        for block, lang in zip(doc.blocks, languages, strict=True):
            spoken[lang] = spoken.get(lang, 0.0) + (block.end or 0.0) - (block.start or 0.0)
        if len(spoken) > 1:
            doc.warnings.append(
                "the recording switches language ("
                + ", ".join(f"{k}: {v:.0f} s" for k, v in sorted(spoken.items(), key=lambda kv: -kv[1]))
                + "); each segment's language is in segment_languages"
            )

        if not doc.blocks:
            doc.warnings.append(NO_SPEECH_WARNING)
        doc.metadata.update(
            duration_s=round(pcm.size / SAMPLE_RATE, 3),
            speech_duration_s=round(float(info.duration_after_vad), 3),
            language=max(spoken, key=lambda k: spoken[k]) if spoken else info.language,
            language_probability=round(float(info.language_probability), 4),
            languages=sorted(spoken, key=lambda k: -spoken[k]),
            segment_languages=languages,
            model=options.whisper_model,
            model_path=str(model_dir),
            device=device,
            compute_type=options.whisper_compute_type,
            segment_count=len(doc.blocks),
        )
        return doc
