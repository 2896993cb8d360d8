#!/usr/bin/env bash
# Installs what is missing, builds, then compiles and runs the example Transformer classifier:
# prints the class probabilities and the time per inference.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
scripts/build.sh
ex=examples/transformer_classifier
./build/tools/kilnc run "$ex/transformer_classifier.yaml" --input tokens="$ex/tokens.npy" --repeat 200
