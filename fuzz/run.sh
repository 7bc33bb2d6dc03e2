#!/usr/bin/env bash
# Fuzzes memres: each target in fuzz/fuzz_targets/ for a bounded time,
# starting from its committed corpus (fuzz/corpus/<target>/).
#
#   bash fuzz/run.sh [SECONDS]     # fuzzing time per target; default 60
#
# Before fuzzing a target, replays the crash reproducers in
# fuzz/artifacts/<target>/crash-* (open bugs, committed with `git add -f` as
# the directory is ignored: they fail until fixed; a fixed one belongs in the
# corpus, where every run replays it as a regression test).
# New interesting inputs go to fuzz/target/corpus-new/<target>/, not into the
# committed corpus; a crash is written to fuzz/artifacts/<target>/.
# Exits non-zero if any target crashed (or a reproducer still crashes).
# Needs the nightly toolchain; installs cargo-fuzz if it is missing.
set -euo pipefail
cd "$(dirname "$0")"

secs=${1:-60}
if ! [[ $secs =~ ^[1-9][0-9]*$ ]]; then
  echo "fuzz/run.sh: the time per target must be a positive number of seconds, not '$secs'" >&2
  exit 2
fi

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz/run.sh: installing the nightly toolchain (cargo-fuzz needs it)"
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz/run.sh: installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi
echo "fuzz/run.sh: $(cargo fuzz --version), $(cargo +nightly --version)"

failed=()
for source in fuzz_targets/*.rs; do
  target=$(basename "$source" .rs)
  corpus=corpus/$target
  # The secure-mode heap target reads the heap target's inputs (the same
  # format); its own finds go to its scratch directory, as every target's do.
  [[ $target == heap_secure ]] && corpus=corpus/heap
  fresh=target/corpus-new/$target
  log=target/fuzz-logs/$target-replay.log
  mkdir -p "$corpus" "$fresh" target/fuzz-logs

  shopt -s nullglob
  repros=(artifacts/"$target"/crash-*)
  shopt -u nullglob
  if ((${#repros[@]} > 0)); then
    echo
    echo "=== fuzz target '$target': replaying ${#repros[@]} kept crash reproducer(s)"
    for repro in "${repros[@]}"; do
      if cargo +nightly fuzz run "$target" "$repro" >"$log" 2>&1; then
        echo "    $repro: passes (fixed? then move it into $corpus/)"
      else
        echo "    $repro: STILL CRASHES (full log: fuzz/$log):"
        grep -E -A1 "panicked at|^SUMMARY" "$log" | head -8 | sed 's/^/      /'
        failed+=("$target (reproducer $repro)")
      fi
    done
  fi

  echo
  echo "=== fuzz target '$target': fuzzing for ${secs}s from $corpus ($(find "$corpus" -type f | wc -l) inputs)"
  start=$(date +%s)
  status=0
  # The first corpus directory receives the new inputs, so it is the scratch one.
  # The heap and pool targets' misuses are each reported on stderr by design
  # ("memres: double free at ..."); those lines are counted, not printed.
  cargo +nightly fuzz run "$target" "$fresh" "$corpus" -- -max_total_time="$secs" -print_final_stats=1 \
    2> >(awk '/^memres: /{n++; next} {print} END{if (n) print "    (" n " expected misuse reports not shown)"}' >&2) ||
    status=$?
  elapsed=$(($(date +%s) - start))
  if ((status == 0)); then
    echo "=== fuzz target '$target': no crash in ${secs}s of fuzzing (${elapsed}s with the build)"
  else
    echo "=== fuzz target '$target': FAILED (exit status $status) after ${elapsed}s: a crash (input saved in artifacts/$target/) or a build error, see above"
    failed+=("$target")
  fi
done

echo
if ((${#failed[@]} > 0)); then
  printf 'fuzz/run.sh: FAILED: %s\n' "${failed[@]}"
  exit 1
fi
echo "fuzz/run.sh: every target ran ${secs}s without a crash"
