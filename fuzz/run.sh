#!/usr/bin/env bash
# Builds the fuzz targets and runs each one, seeded from make_seeds.py.
#   fuzz/run.sh --seconds 20         what CI runs: every target briefly
#   fuzz/run.sh --runs 10000000      the campaign (README "Fuzzing"), one target after another
#   fuzz/run.sh --runs N TARGET...   only those targets
#   FUZZ_SANITIZER=none fuzz/run.sh ...   without AddressSanitizer (see below), built apart
# Prints one line per target: executions, time, rate, coverage, peak RSS. A crash fails the run
# and leaves its input in fuzz/artifacts/TARGET/: fix it, add a unit test beside the code, and
# copy the input into fuzz/regressions/TARGET/, which every run replays first.
set -euo pipefail
cd "$(dirname "$0")"

limit=()
case "${1:-}" in
--seconds) limit=(-max_total_time="$2") ;;
--runs) limit=(-runs="$2") ;;
*)
    echo "usage: $0 --seconds N | --runs N [TARGET...]" >&2
    exit 2
    ;;
esac
shift 2

# Optimised, with debug assertions and overflow checks on (cargo-fuzz's default without
# --release), under AddressSanitizer. cargo-fuzz needs nightly-only compiler flags (sanitizers,
# coverage instrumentation); the one stable toolchain here accepts them under RUSTC_BOOTSTRAP.
# No target reaches an `unsafe` block (they drive the in-memory paths: `remux::copy::write_mp4`
# into a Vec, not the mmap/O_DIRECT file copies), so for the long campaign AddressSanitizer
# finds nothing that bounds checks would not, at 2-3 times the cost:
# FUZZ_SANITIZER=none builds without it, in a target directory of its own so the two builds
# do not replace each other.
export RUSTC_BOOTSTRAP=1
sanitizer=${FUZZ_SANITIZER:-address}
build=(--debug-assertions --sanitizer "$sanitizer")
if [[ $sanitizer != address ]]; then
    build+=(--target-dir "target-$sanitizer")
fi
targets=(rtmp_session chunk_reader amf0 flv_reader remux_scan codec_headers)
if (($#)); then
    targets=("$@")
fi
cargo fuzz build "${build[@]}"

seeds=$(mktemp -d)
trap 'rm -rf "$seeds"' EXIT
python3 make_seeds.py "$seeds"

status=0
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    log="artifacts/$t/last-run.log"
    # Inputs that once crashed a target (regressions/TARGET/) run first, with the seeds.
    mkdir -p "regressions/$t"
    if cargo fuzz run "${build[@]}" "$t" "corpus/$t" "$seeds/$t" "regressions/$t" -- \
        "${limit[@]}" -print_final_stats=1 -rss_limit_mb=2048 -timeout=10 \
        -artifact_prefix="artifacts/$t/" >"$log" 2>&1; then
        result=ok
    else
        result=CRASH
        status=1
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    printf '%-14s %-5s runs %-10s %6ss  %8s exec/s  cov %-6s peak RSS %s MB\n' \
        "$t" "$result" "${runs:-?}" "${secs:-?}" "${rate:-?}" "${cov:-?}" "${rss:-?}"
    if [[ $result != ok ]]; then
        grep -m 20 -E 'panicked|ERROR|SUMMARY|artifact' "$log" || tail -n 20 "$log"
    fi
done
exit $status
