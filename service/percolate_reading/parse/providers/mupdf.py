"""PyMuPDF, imported the way the providers want it: without its optional add-ons, and quiet.

Import `pymupdf` from here, not directly, so these settings hold wherever it is first loaded.
"""

from __future__ import annotations

import sys

# PyMuPDF imports pymupdf4llm and pymupdf-layout (an ONNX model, onnxruntime, numpy, tqdm)
# at its own import whenever they are installed, e.g. in a development environment. We use
# neither (tables are found with use_layout=False); loading them costs every process ~200 ms
# and ~50 MB, and every sandbox fork ~1.5 ms more page tables to copy. A None entry in
# sys.modules makes an import fail; the entries are removed again afterwards, so code that
# wants those packages can still import them itself.
_OPTIONAL = ("pymupdf.layout", "pymupdf4llm")
_blocked = [name for name in _OPTIONAL if name not in sys.modules]
for _name in _blocked:
    sys.modules[_name] = None  # type: ignore[assignment]
try:
    import pymupdf
finally:
    for _name in _blocked:
        if _name in sys.modules and sys.modules[_name] is None:
            del sys.modules[_name]

# Without the layout package, PyMuPDF prints an advertisement for it to stdout on the first
# table search: in the `parse` CLI that would mix with its own output.
if hasattr(pymupdf, "no_recommend_layout"):
    pymupdf.no_recommend_layout()  # type: ignore[no-untyped-call]

__all__ = ["pymupdf"]
