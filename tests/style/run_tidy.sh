#!/usr/bin/env bash
# style_tidy: clang-tidy-14 with the repository's .clang-tidy over the library's .cpp files (graph/ ops/
# passes/ frontends/ runtime/, as listed in BUILD_DIR/compile_commands.json) and the project headers they
# include; exits 1 on any warning. Files run in parallel (JOBS, default: the number of cores).
#   tests/style/run_tidy.sh SOURCE_DIR BUILD_DIR [JOBS]
# Under KILN_MAX_ISA (scripts/test.sh's capped reruns) it skips (exit 77): lint does not depend on the ISA.
set -uo pipefail
src=$(cd "$1" && pwd); build=$(cd "$2" && pwd); jobs=${3:-$(nproc)}
CLANG_TIDY=${CLANG_TIDY:-clang-tidy-14}
if [[ -n "${KILN_MAX_ISA:-}" ]]; then echo "style_tidy: skipped under KILN_MAX_ISA (ISA-independent)"; exit 77; fi
command -v "$CLANG_TIDY" >/dev/null || { echo "style_tidy: $CLANG_TIDY not found (scripts/install_deps.sh)"; exit 2; }
[[ -f "$build/compile_commands.json" ]] || { echo "style_tidy: no $build/compile_commands.json"; exit 2; }
mapfile -t files < <(grep -o '"file": *"[^"]*"' "$build/compile_commands.json" | sed 's/.*"\([^"]*\)"$/\1/' |
  grep -E "^$src/(graph|ops|passes|frontends|runtime)/.*\.cpp$" | LC_ALL=C sort -u)
[[ ${#files[@]} -gt 0 ]] || { echo "style_tidy: no library files in $build/compile_commands.json"; exit 2; }
out=$(mktemp -d); trap 'rm -rf "$out"' EXIT
start=$(date +%s)
# -Wno-unknown-warning-option: the build's GCC-only flags (-Wno-restrict) mean nothing to clang.
printf '%s\n' "${files[@]}" | xargs -P "$jobs" -I{} sh -c \
  '"$0" -p "$1" --quiet --extra-arg=-Wno-unknown-warning-option "$2" > "$3/$(echo "$2" | tr / _).log" 2>&1' \
  "$CLANG_TIDY" "$build" {} "$out"
# A header's warning shows once per file that includes it: count each distinct one once.
cat "$out"/*.log | grep -E '^[^ ]+:[0-9]+:[0-9]+: (warning|error):' | LC_ALL=C sort -u > "$out/all"
n=$(wc -l < "$out/all")
cat "$out/all"
if [[ $n -gt 0 ]]; then
  echo; echo "per check:"; sed -E 's/.*\[([^]]+)\]$/\1/' "$out/all" | sort | uniq -c | sort -rn
fi
echo "style_tidy: ${#files[@]} files, $n warning(s), $(( $(date +%s) - start )) s with $jobs jobs"
[[ $n -eq 0 ]]
