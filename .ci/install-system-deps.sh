#!/usr/bin/env bash
# System packages for the browser and WebGPU tests (Debian packages only). Each step may fail on a
# machine without apt; the tests then report what they skipped and why.
set -uo pipefail
if command -v apt-get >/dev/null 2>&1; then
  echo "system deps: none yet"
fi
