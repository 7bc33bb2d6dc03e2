#!/usr/bin/env bash
# What each process allocator does with each misuse of
# malloc/tests/programs/misuse.c (a double free, a write after free, an
# interior free, ...): glibc, memres (libmemres_malloc.so, by default, with
# MEMRES_ON_MISUSE=report, and in secure mode, MEMRES_SECURE=1), and mimalloc, jemalloc and tcmalloc where their
# Debian packages are installed (installed here if missing and possible; an
# allocator that cannot be had is named as skipped). Prints a markdown table:
#
#   detected     the allocator stopped the program with a message
#   reported     memres printed the misuse and the program went on safely
#   CORRUPTED    a later malloc returned a live block or the planted address
#   crashed      the program died of a signal other than SIGABRT
#   silent       the program ran through and nothing was said
#   absorbed     (memres in secure mode) the same, because the write landed
#                in a freed block held in the quarantine: zeroed, off every
#                free list, relinked afresh when it leaves
#
# Exits non-zero if memres's column shows a corruption, a crash or a hang
# (CI runs it as a check).
#
#   bash benches/misuse_table.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/peers.sh
cargo build --release -q -p memres-malloc
memres=$PWD/target/release/libmemres_malloc.so
bin=target/misuse
cc -O1 -pthread -Wno-use-after-free -o "$bin" malloc/tests/programs/misuse.c

configs=("glibc|||" "memres|$memres||" "memres, report|$memres|report|" "memres, secure|$memres||1")
names=("glibc" "memres" "memres, report" "memres, secure")
for peer in mimalloc jemalloc tcmalloc; do
  if [[ -e ${!peer} ]]; then
    configs+=("$peer|${!peer}||")
    names+=("$peer")
  else
    echo "skipped: $peer (its Debian package is not installed)" >&2
  fi
done
cases="double-free delayed-double-free double-free-thread double-free-across-sizes double-free-large
double-free-large-later double-free-huge realloc-after-free write-after-free overflow-8 overflow-1 interior-free
misaligned-free interior-free-large misaligned-free-large stack-free wild-free wild-free-low"

memres_failed=""
header="| misuse |"
rule="|---|"
for name in "${names[@]}"; do header+=" $name |"; rule+="---|"; done
echo "$header"
echo "$rule"
for case in $cases; do
  row="| $case |"
  for config in "${configs[@]}"; do
    IFS='|' read -r name preload mode secure <<<"$config"
    set +e
    out=$(LD_PRELOAD=$preload MEMRES_ON_MISUSE=$mode MEMRES_SECURE=$secure timeout 60 "$bin" "$case" 2>&1)
    status=$?
    set -e
    if grep -q CORRUPTED <<<"$out"; then
      result=CORRUPTED
    elif ((status == 134)); then
      result=detected
    elif ((status > 128)); then
      result="crashed ($(kill -l $((status - 128))))"
    elif ((status == 124)); then
      result="hung"
    elif grep -qi "memres:\|invalid\|double free\|corrupt" <<<"${out/survived*/}"; then
      result=reported
    elif ((status == 0)) && [[ -n $secure ]]; then
      result=absorbed
    elif ((status == 0)); then
      result=silent
    else
      result="exit $status"
    fi
    row+=" $result |"
    # memres must never corrupt, crash or hang; "silent" (safely survived)
    # is allowed where the misuse cannot always be told from valid data
    # (malloc/tests/preload.rs pins down which cases must be detected).
    if [[ $name == memres* && ($result == CORRUPTED || $result == crashed* || $result == hung || $result == exit*) ]]; then
      memres_failed+=" $case ($name: $result)"
    fi
  done
  echo "$row"
done
if [[ -n $memres_failed ]]; then
  echo "misuse_table.sh: memres corrupted, crashed or hung:$memres_failed" >&2
  exit 1
fi
