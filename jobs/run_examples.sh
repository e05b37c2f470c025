#!/bin/sh
# run_examples.sh - the README's demo: submit the example jobs, run them on the
# demo model on the CPU, and print a summary (jobs, tokens/s, accuracy per task).
#
#   jobs/run_examples.sh [BUILD_DIR] [MODEL.gguf]
#
# The job database is BUILD_DIR/demo.db, made afresh each time; query it
# afterwards with `sqlite3 BUILD_DIR/demo.db -cmd '.load BUILD_DIR/librocmforge_sqlite'`.
set -eu
build=${1:-build}
model=${2:-jobs/demo/demo-q8_0.gguf}
rf="$build/rocmforge"
db="$build/demo.db"
here=$(dirname "$0")

rm -f "$db" "$db-wal" "$db-shm"
for f in eval generate openai_batch score; do
    "$rf" submit "$db" "$here/examples/$f.jsonl"
done
# Deliberately bad lines: submit says which and why (exit status 1), the good ones go in.
"$rf" submit "$db" "$here/examples/bad_lines.jsonl" || true

"$rf" run "$db" -m "$model" --progress lines
echo
"$rf" status "$db"
echo
echo "Exact-match accuracy of run 'eval' (jobs/examples/accuracy.sql):"
sqlite3 -header -column "$db" -cmd ".load $build/librocmforge_sqlite" < "$here/examples/accuracy.sql"
echo
echo "Results: sqlite3 $db -cmd '.load $build/librocmforge_sqlite' 'SELECT run, custom_id, output FROM results_text LIMIT 10'"
