#!/usr/bin/env bash
# cargo fuzz targets of ticket-server (fuzz/), each one `cargo fuzz list`
# names: the request body of every route that takes one (the admin
# admission controls included), request targets (paths, ids, query
# strings), queue tokens, Last-Event-ID and the SSE writer. Each runs
# for FUZZ_SECONDS from the committed seeds (fuzz/seeds/<target>, written
# by hand, the regressions among them) and corpus (fuzz/corpus/<target>,
# what earlier runs grew, minimised with libFuzzer's -merge=1) in a
# scratch corpus, so the tree stays clean; a crash fails the suite and
# its input is kept under $TEST_OUTPUT_DIR/fuzz. To refresh the committed
# corpus from a run: FUZZ_KEEP_CORPUS=1 (merges the run's into it). Needs the nightly
# toolchain; installs cargo-fuzz.
set -euo pipefail
cd "$(dirname "$0")/../.."

FUZZ_SECONDS=${FUZZ_SECONDS:-25}
CARGO_FUZZ_VERSION=0.13.2
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ticketbench/target}"
# Sanitizer builds apart from the normal ones (other flags, other triple dir).
fuzz_target_dir="$HOME/.cache/ticketbench/fuzz-target"
out="${TEST_OUTPUT_DIR:-$CARGO_TARGET_DIR/test-output}/fuzz"

if ! rustup toolchain list | grep -q '^nightly'; then
    echo "fuzz: installing the nightly toolchain"
    timeout 900 rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
    echo "fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION"
    timeout 900 cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
fi

rm -rf "$out"
mkdir -p "$out"
cd fuzz
echo "fuzz: building the targets (nightly, address sanitizer)"
CARGO_TARGET_DIR="$fuzz_target_dir" timeout 1500 cargo +nightly fuzz build -O

failed=0
for target in $(cargo +nightly fuzz list); do
    corpus="$out/corpus/$target"
    mkdir -p "$corpus" "$out/artifacts/$target"
    cp seeds/"$target"/* "$corpus"/
    if [ -d corpus/"$target" ]; then cp corpus/"$target"/* "$corpus"/; fi
    echo "fuzz: $target for ${FUZZ_SECONDS}s"
    if CARGO_TARGET_DIR="$fuzz_target_dir" timeout $((FUZZ_SECONDS + 120)) \
        cargo +nightly fuzz run -O "$target" "$corpus" -- \
        -max_total_time="$FUZZ_SECONDS" -max_len=16384 -rss_limit_mb=2048 \
        -artifact_prefix="$out/artifacts/$target/" -print_final_stats=1 \
        >"$out/$target.log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/$target.log" | tail -1)
        echo "fuzz: $target passed: ${runs:-?} executions, corpus $(ls "$corpus" | wc -l) inputs"
        if [ "${FUZZ_KEEP_CORPUS:-0}" = 1 ]; then
            # -merge=1 keeps only inputs that add coverage to what is kept.
            mkdir -p corpus/"$target"
            CARGO_TARGET_DIR="$fuzz_target_dir" cargo +nightly fuzz run -O "$target" \
                corpus/"$target" "$corpus" -- -merge=1 -max_len=16384 -rss_limit_mb=2048 \
                >"$out/$target.merge.log" 2>&1
            echo "fuzz: $target: committed corpus now $(ls corpus/"$target" | wc -l) inputs"
        fi
    else
        echo "fuzz: $target FAILED; the crashing input is in $out/artifacts/$target" >&2
        tail -60 "$out/$target.log" >&2
        failed=1
    fi
done
exit "$failed"
