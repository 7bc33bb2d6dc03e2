# Sourced by the scripts that time builds or allocators side by side, one
# process per run, rounds interleaved (benches/hardening.sh,
# benches/pool_hardening.sh, benches/arena.sh).
#
# side_by_side_args "$@"   sets $rounds (the first number; default 5) and
#                          $instructions (true with --instructions)
# need_valgrind NAME       exits with a message if valgrind is missing
# instructions_of CMD...   prints the instructions CMD executes (callgrind:
#                          stable where times are noisy)

side_by_side_args() {
  rounds=5
  instructions=false
  for arg in "$@"; do
    case $arg in
      --instructions) instructions=true ;;
      *[!0-9]* | "")
        echo "${0##*/}: unknown argument '$arg' (usage: [rounds] [--instructions])" >&2
        exit 2
        ;;
      *) rounds=$arg ;;
    esac
  done
}

need_valgrind() {
  if ! command -v valgrind >/dev/null; then
    echo "$1: --instructions skipped: valgrind is not installed (Debian: apt-get install valgrind)" >&2
    exit 1
  fi
}

instructions_of() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
