#!/usr/bin/env bash
# memres as an installed package: builds and installs it with CMake into a
# temporary prefix, moves the prefix (the package is relocatable), then
# builds and runs three consumers:
#   - CMake find_package(memres 0.1 CONFIG), with cargo off the PATH;
#   - a plain Makefile through pkg-config, with cargo off the PATH;
#   - CMake FetchContent from this checkout (builds the Rust core itself).
# Needs cmake, make, pkg-config and a C/C++ compiler.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
for tool in cmake make pkg-config; do
  command -v "$tool" >/dev/null || { echo "tests/install/run.sh: $tool is missing (Debian: apt-get install $tool)" >&2; exit 1; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# One cargo target directory for the install build and the FetchContent
# build, kept between runs.
cargo_dir=$repo/target/install-test-cargo

echo "--- build and install"
cmake -S . -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DMEMRES_SHARED=ON -DMEMRES_CARGO_TARGET_DIR="$cargo_dir" >/dev/null
cmake --build "$work/build" -j2 >/dev/null
cmake --install "$work/build" --prefix "$work/installed" >/dev/null
mv "$work/installed" "$work/prefix"
prefix=$work/prefix
for f in include/memres/memres.hpp include/memres/malloc.h lib/libmemres.a lib/libmemres_malloc.so \
  lib/cmake/memres/memresConfig.cmake lib/cmake/memres/memresConfigVersion.cmake lib/pkgconfig/memres.pc \
  lib/libmemres.so lib/libmemres.so.0.1; do
  [ -e "$prefix/$f" ] || { echo "install: $f is missing" >&2; exit 1; }
done
# libmemres.so: its SONAME carries the ABI version, and it exports the C++
# API (the memres namespace) and nothing else.
readelf -d "$prefix/lib/libmemres.so" | grep -q 'SONAME.*\[libmemres\.so\.0\.1\]' ||
  { echo "install: libmemres.so's SONAME is not libmemres.so.0.1" >&2; exit 1; }
others=$(nm -D --defined-only "$prefix/lib/libmemres.so" | c++filt | awk '{ $1 = $2 = ""; print }' | grep -v '^  memres::' |
  grep -v -E '^  (typeinfo|typeinfo name|vtable|TLS wrapper function|TLS init function) for memres::' || true)
if [ -n "$others" ]; then
  echo "install: libmemres.so exports more than the memres namespace:" >&2
  echo "$others" | head >&2
  exit 1
fi

# PATH without any directory that holds cargo.
no_cargo_path=
IFS=: read -ra dirs <<<"$PATH"
for d in "${dirs[@]}"; do
  [ -x "$d/cargo" ] || no_cargo_path=${no_cargo_path:+$no_cargo_path:}$d
done
if PATH=$no_cargo_path command -v cargo >/dev/null; then
  echo "tests/install/run.sh: could not take cargo off the PATH" >&2
  exit 1
fi

echo "--- find_package consumer (no cargo on PATH)"
PATH=$no_cargo_path cmake -S tests/install -B "$work/consumer" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
PATH=$no_cargo_path cmake --build "$work/consumer" -j2 >/dev/null
"$work/consumer/consumer"
LD_LIBRARY_PATH=$prefix/lib "$work/consumer/malloc_consumer"
LD_LIBRARY_PATH=$prefix/lib "$work/consumer/shared_consumer"
ldd "$work/consumer/shared_consumer" | grep -q 'libmemres\.so\.0\.1 =>' ||
  { echo "install: shared_consumer does not load libmemres.so.0.1" >&2; exit 1; }

echo "--- pkg-config + make consumer (no cargo on PATH)"
mkdir "$work/make"
cp tests/install/Makefile tests/install/consumer.cpp "$work/make/"
PATH=$no_cargo_path PKG_CONFIG_PATH=$prefix/lib/pkgconfig make -s -C "$work/make" consumer
# -lmemres takes libmemres.so where it is installed, as the linker does.
LD_LIBRARY_PATH=$prefix/lib "$work/make/consumer"

echo "--- FetchContent consumer"
cmake -S tests/install/fetchcontent -B "$work/fetch" -DMEMRES_SOURCE="$repo" \
  -DMEMRES_CARGO_TARGET_DIR="$cargo_dir" >/dev/null
cmake --build "$work/fetch" -j2 >/dev/null
"$work/fetch/consumer"
echo "install: ok"
