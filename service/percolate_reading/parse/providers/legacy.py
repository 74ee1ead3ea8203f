"""Legacy binary Word (DOC) and PowerPoint (PPT): converted by LibreOffice headless to
DOCX/PPTX, then read by those providers.

LibreOffice is optional. It is looked up once per process (`soffice` / `libreoffice` on PATH,
or PERCOLATE_READING_SOFFICE); without it these types fail with a permanent
`unsupported_type` that says what to install. The conversion runs inside the parse's sandbox
child (same memory, CPU, wall-clock and scratch limits: the child's process group is killed
on timeout, LibreOffice with it), with a private throw-away user profile so parallel
conversions never share state, and with no network (the sandbox has no use for it and the
profile disables updates and remote resources).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from percolate_reading.config import Settings
from percolate_reading.errors import CorruptDocumentError, EncryptedDocumentError, UnsupportedTypeError
from percolate_reading.parse.document import DocumentType, ParsedDocument
from percolate_reading.parse.providers.base import ParseOptions

CONVERT_TIMEOUT_S = 240.0
INSTALL_HINT = (
    "install LibreOffice (Debian: apt-get install libreoffice-writer-nogui libreoffice-impress-nogui)"
)


@functools.cache
def soffice_path() -> str | None:
    """The LibreOffice binary, or None when it is not installed."""
    configured = os.environ.get("PERCOLATE_READING_SOFFICE")
    if configured:
        return configured if Path(configured).exists() else None
    return shutil.which("soffice") or shutil.which("libreoffice")


def libreoffice_available() -> bool:
    return soffice_path() is not None


def convert(path: Path, target: str, source_name: str, timeout_s: float = CONVERT_TIMEOUT_S) -> Path:
    """Convert `path` to the `target` extension with LibreOffice; returns the new file."""
    binary = soffice_path()
    if binary is None:
        raise UnsupportedTypeError(
            f"{source_name}: legacy {path.suffix or 'Office'} files need LibreOffice to be read, "
            f"and it is not installed on this worker; {INSTALL_HINT}, or save the file as .{target}"
        )
    work = Path(tempfile.mkdtemp(prefix="soffice-"))
    src = work / f"input{'.doc' if target == 'docx' else '.ppt'}"
    shutil.copyfile(path, src)
    out_dir = work / "out"
    cmd = [
        binary,
        f"-env:UserInstallation=file://{work / 'profile'}",
        "--headless",
        "--norestore",
        "--nologo",
        "--nodefault",
        "--nolockcheck",
        "--convert-to",
        target,
        "--outdir",
        str(out_dir),
        str(src),
    ]
    env = {**os.environ, "HOME": str(work), "SAL_USE_VCLPLUGIN": "svp"}
    try:
        proc = subprocess.run(
            cmd, capture_output=True, timeout=timeout_s, env=env, check=False, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired as exc:
        raise CorruptDocumentError(
            f"{source_name}: LibreOffice did not finish converting in {timeout_s:g} s"
        ) from exc
    result = out_dir / f"input.{target}"
    if not result.exists():
        detail = (proc.stderr or proc.stdout or b"").decode("utf-8", errors="replace").strip()[-300:]
        if "password" in detail.lower():
            raise EncryptedDocumentError(f"{source_name}: the document is password-protected")
        reason = detail or "no output"
        raise CorruptDocumentError(
            f"{source_name}: LibreOffice could not convert the file (exit {proc.returncode}): {reason}"
        )
    return result


@dataclass(frozen=True)
class _LegacyProvider:
    settings: Settings | None = None

    def _parse(
        self, path: Path, source_name: str, options: ParseOptions, kind: DocumentType
    ) -> ParsedDocument:
        from percolate_reading.parse.providers import get_provider

        t0 = time.perf_counter()
        target = DocumentType.DOCX if kind is DocumentType.DOC else DocumentType.PPTX
        converted = convert(path, target.value, source_name)
        t1 = time.perf_counter()
        try:
            doc = get_provider(target, self.settings).parse(converted, source_name, options)
        finally:
            shutil.rmtree(converted.parent.parent, ignore_errors=True)
        doc.doc_type = kind
        doc.timings = {"convert": t1 - t0, **doc.timings}
        doc.metadata.update(converted_with="LibreOffice", converted_to=target.value)
        return doc


@dataclass(frozen=True)
class DocProvider(_LegacyProvider):
    doc_type = DocumentType.DOC

    @classmethod
    def from_settings(cls, settings: Settings) -> DocProvider:
        return cls(settings=settings)

    def parse(self, path: Path, source_name: str, options: ParseOptions) -> ParsedDocument:
        return self._parse(path, source_name, options, DocumentType.DOC)


@dataclass(frozen=True)
class PptProvider(_LegacyProvider):
    doc_type = DocumentType.PPT

    @classmethod
    def from_settings(cls, settings: Settings) -> PptProvider:
        return cls(settings=settings)

    def parse(self, path: Path, source_name: str, options: ParseOptions) -> ParsedDocument:
        return self._parse(path, source_name, options, DocumentType.PPT)
