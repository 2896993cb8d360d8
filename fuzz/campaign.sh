#!/usr/bin/env bash
# A fuzzing campaign for one target (docs/fuzzing.md): fuzzes on top of the committed corpus and regression
# inputs, keeps going after a crash (libFuzzer's fork mode; each crash-* input lands in the work folder for
# triage), then minimizes the corpus (-merge=1) back into fuzz/corpus/<target>.
#   fuzz/campaign.sh TARGET BUILD_DIR [SECONDS] [RUNS]      e.g. fuzz/campaign.sh fuzz_npy build-asan 600
# Runs under nice -n 10, one job, so that it does not starve other builds on the machine. FORK=0: one
# process (faster; stops at the first crash).
set -euo pipefail
cd "$(dirname "$0")/.."
target=$1 build=$2 seconds=${3:-600} runs=${4:--1}
bin=$build/fuzz/$target
work=${KILN_FUZZ_WORK:-/tmp/kiln-campaign}/$target
mkdir -p "$work/corpus" "fuzz/regressions/$target"
export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
dict=()
case $target in *yaml*|*seq2seq*|*c_api*) dict=(-dict=fuzz/yaml.dict) ;; esac
mode=(-fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1)
if [[ ${FORK:-1} == 0 ]]; then mode=(-print_final_stats=1); fi
nice -n 10 "$bin" "${mode[@]}" -max_total_time="$seconds" -runs="$runs" \
  -timeout=30 -rss_limit_mb=2560 "${dict[@]}" -artifact_prefix="$work/" \
  "$work/corpus" "fuzz/corpus/$target" "fuzz/regressions/$target" 2>&1 | tee "$work/log" | grep -E "^#[0-9]+: cov|INFO: fuzzed|DONE|crash|CRASH|==ERROR|SUMMARY|number_of_executed_units" || true
rm -rf "$work/merged" && mkdir "$work/merged"
nice -n 10 "$bin" -merge=1 -rss_limit_mb=2560 "$work/merged" "fuzz/corpus/$target" "$work/corpus" >"$work/merge.log" 2>&1
rm -rf "fuzz/corpus/$target" && cp -r "$work/merged" "fuzz/corpus/$target"
echo "$target: corpus $(ls "fuzz/corpus/$target" | wc -l) files, $(du -sh "fuzz/corpus/$target" | cut -f1)"
