#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite: once natively, then the fast tests again
# with Kiln's and oneDNN's instruction set capped (KILN_MAX_ISA, docs/portability.md), so one host proves
# the code paths of the others: AVX2 (what an AVX2-only CPU runs) and SSE4.1 (no Kiln kernel: oneDNN's
# fallbacks). Where the CPU has no more than the cap, that pass runs the native paths again.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
scripts/build.sh
cd build
ctest --output-on-failure -j"$(nproc)"
# The labelled tests (stress, TSan and sanitizer builds, install, style) do not depend on the cap: once is enough.
for cap in avx2 sse41; do
  echo "== the fast tests again with KILN_MAX_ISA=$cap"
  KILN_MAX_ISA=$cap ctest --output-on-failure -j"$(nproc)" -LE "stress|tsan|install|sanitize|fuzz|style"
done
