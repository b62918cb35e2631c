#!/usr/bin/env bash
# Runs every Basalt test on a fresh Debian 12 machine: installs what is needed, builds (Release),
# runs the unit and integration tests, then the unit and parser tests again under ASan+UBSan.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh build
ctest --test-dir build --output-on-failure --timeout 900 -j 2
./scripts/build.sh build-asan -DCMAKE_BUILD_TYPE=Debug -DBASALT_SANITIZE=ON -DBASALT_INTEGRATION_TESTS=OFF
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan -L unit --output-on-failure -j 2
echo "all tests passed"
