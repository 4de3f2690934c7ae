#!/usr/bin/env bash
# Builds the bot and the benchmarks (release) and runs every benchmark in bench/src/bin with its
# defaults. Tables (Markdown) go to stdout and to $CARGO_TARGET_DIR/bench-results.md; progress
# goes to stderr. Needs PostgreSQL at BENCH_DATABASE_URL
# (default postgres://postgres@127.0.0.1:5432/test) unless BENCH_DBS=sqlite.
#
#   bench/run-all.sh                 # everything
#   bench/run-all.sh intake operator # only these
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
cargo build --release -p botfleet-bot -p botfleet-bench
if [ "$#" -gt 0 ]; then
    benches=("$@")
else
    # Ours first, then whatever else lives in bench/src/bin.
    benches=(intake end_to_end operator)
    for src in bench/src/bin/*.rs; do
        name="$(basename "$src" .rs)"
        case " ${benches[*]} " in *" $name "*) ;; *) benches+=("$name") ;; esac
    done
fi
out="$target/bench-results.md"
: > "$out"
for name in "${benches[@]}"; do
    echo ">>> $name" >&2
    "$target/release/$name" | tee -a "$out"
    echo | tee -a "$out"
done
echo "tables written to $out" >&2
