#!/usr/bin/env bash
# Formats Kiln's C++ sources in place with clang-format-14 and the repository's .clang-format.
#   scripts/format.sh           rewrite the files
#   scripts/format.sh --check   change nothing; list the files that differ and exit 1 if any does
#                               (the ctest style_format)
# The file set: every .cpp .hpp .h .inc under graph/ ops/ passes/ frontends/ runtime/ include/ tools/.
set -euo pipefail
cd "$(dirname "$0")/.."
CLANG_FORMAT=${CLANG_FORMAT:-clang-format-14}
command -v "$CLANG_FORMAT" >/dev/null || { echo "format.sh: $CLANG_FORMAT not found (scripts/install_deps.sh installs it)" >&2; exit 2; }
mapfile -t files < <(find graph ops passes frontends runtime include tools -type f \
  \( -name '*.cpp' -o -name '*.hpp' -o -name '*.h' -o -name '*.inc' \) | LC_ALL=C sort)
if [[ "${1:-}" == "--check" ]]; then
  bad=0
  for f in "${files[@]}"; do
    if ! "$CLANG_FORMAT" --style=file --dry-run --Werror "$f" >/dev/null 2>&1; then
      lines=$("$CLANG_FORMAT" --style=file "$f" | diff "$f" - | grep -c '^[<>]' || true)
      echo "needs formatting: $f ($lines diff lines)"
      bad=$((bad + 1))
    fi
  done
  echo "style_format: ${#files[@]} files checked, $bad need formatting (fix: scripts/format.sh)"
  [[ $bad -eq 0 ]]
else
  "$CLANG_FORMAT" --style=file -i "${files[@]}"
  echo "format.sh: formatted ${#files[@]} files"
fi
