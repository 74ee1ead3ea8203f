#!/usr/bin/env bash
# The main job on a fresh machine: start the single-node platform (`serve`: gateway + worker +
# a private nats-server, local object storage), submit the bundled sample documents through
# the HTTP API, wait for them, download the artifacts, and stop the server.
set -euo pipefail
out="${1:-out}"
data="$out/.serve"
mkdir -p "$out" "$data"
port="$(python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
samples="$(python -c 'import importlib.resources as r; print(r.files("percolate_reading") / "samples")')"

export PERCOLATE_READING_S3_ENABLED=false
export PERCOLATE_READING_DEV_API_KEY="${PERCOLATE_READING_DEV_API_KEY:-pr_demo_$(python -c 'import secrets; print(secrets.token_urlsafe(16))')}"

echo "== starting percolate-reading serve on http://127.0.0.1:$port (state in $data)"
percolate-reading serve --host 127.0.0.1 --port "$port" --data-dir "$data" >"$out/serve.log" 2>&1 &
serve_pid=$!
trap 'kill -TERM $serve_pid 2>/dev/null; wait $serve_pid 2>/dev/null || true' EXIT

for _ in $(seq 1 120); do
  if curl -fsS "http://127.0.0.1:$port/ready" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$serve_pid" 2>/dev/null; then echo "serve exited early:"; cat "$out/serve.log"; exit 1; fi
  sleep 0.5
done
curl -fsS "http://127.0.0.1:$port/ready" >/dev/null || { echo "serve not ready:"; cat "$out/serve.log"; exit 1; }

echo "== submitting the bundled samples from $samples"
percolate-reading submit "$samples"/* --url "http://127.0.0.1:$port" \
  --api-key "$PERCOLATE_READING_DEV_API_KEY" --wait --out "$out"

echo
echo "== artifacts under $out/"
find "$out" -path "$data" -prune -o -type f -print | sort
echo
first_md="$(find "$out" -path "$data" -prune -o -name structured.md -print | sort | head -n 1)"
echo "== head of $first_md"
head -n 25 "$first_md"
