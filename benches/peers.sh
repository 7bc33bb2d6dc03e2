# Sourced by the scripts that run programs under each process allocator
# (benches/malloc.sh, benches/misuse_table.sh): the peers' libraries from
# their Debian packages, installed here if missing and possible.
# Sets $mimalloc, $jemalloc and $tcmalloc to the libraries' paths (which
# may not exist: callers say "skipped" for those).
lib=/usr/lib/x86_64-linux-gnu
mimalloc=$lib/libmimalloc.so.2
jemalloc=$lib/libjemalloc.so.2
tcmalloc=$lib/libtcmalloc_minimal.so.4
if [[ ! -e $mimalloc || ! -e $jemalloc || ! -e $tcmalloc ]] && command -v apt-get >/dev/null && [[ $(id -u) == 0 ]]; then
  pkgs="libmimalloc2.0 libjemalloc2 libtcmalloc-minimal4"
  apt-get install -y -qq $pkgs >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq $pkgs >/dev/null 2>&1; } || true
fi
