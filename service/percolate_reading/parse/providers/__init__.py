"""Provider registry: document type -> provider, imported only when that type is parsed.

Lazy imports keep `percolate-reading parse` on PDFs free of the audio/OCR stacks, and turn a
missing optional dependency into a clear, permanent error that names the extra to install.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from percolate_reading.config import Settings
from percolate_reading.errors import UnsupportedTypeError
from percolate_reading.parse.document import DocumentType
from percolate_reading.parse.providers.base import Provider


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    module: str
    class_name: str
    extra: str | None  # pip extra that brings the provider's dependencies; None = core


PROVIDERS: dict[DocumentType, ProviderSpec] = {
    DocumentType.PDF: ProviderSpec("percolate_reading.parse.providers.pdf", "PdfProvider", None),
    DocumentType.XLSX: ProviderSpec("percolate_reading.parse.providers.xlsx", "XlsxProvider", None),
    DocumentType.AUDIO: ProviderSpec("percolate_reading.parse.providers.audio", "AudioProvider", "audio"),
    DocumentType.IMAGE: ProviderSpec("percolate_reading.parse.providers.image", "ImageProvider", "ocr"),
    DocumentType.DOCX: ProviderSpec("percolate_reading.parse.providers.docx", "DocxProvider", None),
    DocumentType.PPTX: ProviderSpec("percolate_reading.parse.providers.pptx", "PptxProvider", None),
    DocumentType.HTML: ProviderSpec("percolate_reading.parse.providers.html", "HtmlProvider", None),
    DocumentType.CSV: ProviderSpec("percolate_reading.parse.providers.text", "CsvProvider", None),
    DocumentType.TEXT: ProviderSpec("percolate_reading.parse.providers.text", "TextProvider", None),
    DocumentType.MARKDOWN: ProviderSpec("percolate_reading.parse.providers.text", "MarkdownProvider", None),
    DocumentType.EML: ProviderSpec("percolate_reading.parse.providers.email", "EmlProvider", None),
    DocumentType.MSG: ProviderSpec("percolate_reading.parse.providers.email", "MsgProvider", None),
    DocumentType.XLS: ProviderSpec("percolate_reading.parse.providers.spreadsheet", "XlsProvider", None),
    DocumentType.ODS: ProviderSpec("percolate_reading.parse.providers.spreadsheet", "OdsProvider", None),
    DocumentType.ODT: ProviderSpec("percolate_reading.parse.providers.odf", "OdtProvider", None),
    DocumentType.ODP: ProviderSpec("percolate_reading.parse.providers.odf", "OdpProvider", None),
    DocumentType.EPUB: ProviderSpec("percolate_reading.parse.providers.epub", "EpubProvider", None),
    DocumentType.RTF: ProviderSpec("percolate_reading.parse.providers.rtf", "RtfProvider", None),
    DocumentType.DOC: ProviderSpec("percolate_reading.parse.providers.legacy", "DocProvider", None),
    DocumentType.PPT: ProviderSpec("percolate_reading.parse.providers.legacy", "PptProvider", None),
}


# How the dynamic loader fails when the sandbox's address-space limit is reached: the package
# is installed, there is just no room to map it.
_LOADER_MEMORY_FAILURES = ("failed to map segment", "cannot allocate memory")


def missing_dependency_error(doc_type: DocumentType, exc: ImportError) -> UnsupportedTypeError:
    """The error for a provider whose optional dependency is not installed.

    Raises MemoryError instead when the import failed for lack of memory (the sandbox reports
    that as the memory limit it hit)."""
    cause: BaseException | None = exc
    for _ in range(5):  # providers re-raise with their own message; look at the causes too
        if cause is None:
            break
        if any(hint in str(cause).lower() for hint in _LOADER_MEMORY_FAILURES):
            raise MemoryError(str(cause)) from exc
        cause = cause.__cause__ or cause.__context__
    spec = PROVIDERS[doc_type]
    missing = exc.name or str(exc)
    if spec.extra is None:
        hint = "reinstall percolate-reading (it is a core dependency)"
    else:
        hint = f"install it with: pip install 'percolate-reading[{spec.extra}]'"
    return UnsupportedTypeError(
        f"{doc_type.value} parsing needs the Python package {missing!r}, which is not installed; {hint}"
    )


def get_provider(doc_type: DocumentType, settings: Settings | None = None) -> Provider:
    """A ready provider for `doc_type`; raises UnsupportedTypeError if it cannot be loaded.

    With `settings`, a provider class that has `from_settings` is built from them (limits,
    model cache directory); otherwise with its defaults."""
    spec = PROVIDERS.get(doc_type)
    if spec is None:
        raise UnsupportedTypeError(f"no provider for document type {doc_type!r}")
    try:
        module = importlib.import_module(spec.module)
    except ImportError as exc:
        raise missing_dependency_error(doc_type, exc) from exc
    cls = getattr(module, spec.class_name)
    factory = getattr(cls, "from_settings", None)
    provider: Provider = factory(settings) if settings is not None and factory is not None else cls()
    return provider


__all__ = ["PROVIDERS", "Provider", "ProviderSpec", "get_provider", "missing_dependency_error"]
