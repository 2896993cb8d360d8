#!/usr/bin/env bash
# Installs the Debian 12 packages Kiln needs to build and test, skipping those already installed.
# Usage: scripts/install_deps.sh [--bench]   (--bench adds PyTorch and OpenBLAS for bench/ and tools/reference/,
# and OpenCV's DNN module, the second peer of bench/bench_cnn.py)
set -euo pipefail
packages=(g++ cmake make libdnnl-dev ocl-icd-opencl-dev libtbb-dev libyaml-cpp-dev doctest-dev libcli11-dev)
packages+=(pkg-config libtsan2)  # install_and_embed builds with pkg-config; stress_tsan links ThreadSanitizer
packages+=(clang-14 libclang-rt-14-dev)  # sanitize_asan / sanitize_fuzz: ASan, UBSan and libFuzzer runtimes
packages+=(libxxhash-dev nlohmann-json3-dev)  # plan-file checksum (XXH3) and the safetensors JSON header
packages+=(clang-format-14 clang-tidy-14)  # the style test (tests/style): formatting and lint of the library
packages+=(libonnx-dev libprotobuf-dev)  # .onnx models: Debian's ONNX library (parser, checker) and protobuf
packages+=(libonnx-testdata)  # the ONNX backend node tests that the onnx_node_tests case runs (tests/onnx/)
packages+=(python3-dev pybind11-dev python3-numpy)  # the kiln Python module (python/) and its tests
if [[ "${1:-}" == "--bench" ]]; then
  packages+=(python3 python3-torch libopenblas0-openmp libopencv-dnn-dev)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
echo "installing: ${missing[*]}"
sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
"${sudo_cmd[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
