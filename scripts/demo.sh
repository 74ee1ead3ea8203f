#!/usr/bin/env bash
# The main job on a fresh machine: parse the bundled sample documents and show the output.
set -euo pipefail
out="${1:-out}"
samples="$(python -c 'import importlib.resources as r; print(r.files("percolate_reading") / "samples")')"
echo "Parsing the bundled samples in $samples -> $out/"
percolate-reading parse "$samples" --out "$out"
echo
echo "Artifacts written:"
find "$out" -type f | sort
