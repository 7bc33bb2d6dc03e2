#!/usr/bin/env bash
# Runs every test of memres: the Rust workspace (unit, integration and doc
# tests, including the bridge's) and the C++ tests, which build as an
# out-of-tree CMake consumer of memres and run under ctest.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cmake >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "tests/run.sh: installing cmake (Debian package) for the C++ tests"
    apt-get update -qq && apt-get install -y -qq cmake >/dev/null
  else
    echo "tests/run.sh: cmake is missing; the C++ tests need it (Debian: sudo apt-get install cmake)" >&2
    exit 1
  fi
fi

echo "=== Rust tests"
cargo test --workspace

echo "=== The heap's thread and global-allocator suites again, in secure mode"
MEMRES_SECURE=1 cargo test --test heap_threads --test heap_global

echo "=== C++ tests (CMake consumer build)"
cmake -S tests/cpp -B target/cmake-tests -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build target/cmake-tests -j2
ctest --test-dir target/cmake-tests --output-on-failure
