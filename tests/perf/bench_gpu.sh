#!/bin/sh
# bench_gpu.sh - the performance issue's table on one GPU, in one run
#
# usage: tests/perf/bench_gpu.sh [ROCMFORGE] [WORK]
#   ROCMFORGE  a GPU build of the binary (default build/rocmforge)
#   WORK       where the synthetic models and databases go (default a new
#              directory under /tmp, removed at exit; models are reused when
#              WORK is given and they exist)
# environment: JOBS (default 1024), SEQS (default 256)
#
# 1. `rocmforge synth`: Llama-3.2-1B shape F16 (untied), Llama-3-8B shape F16
#    and Q4_0 (random weights; speed does not depend on them)
# 2. `rocmforge bench gpu`: copy bandwidth, GEMM rate, one sequence's decode
#    against the roofline for each model, engine-only batch figures (JOBS
#    prompts x 128 in / 128 out at SEQS sequences) for the F16 models
# 3. `rocmforge run` on JOBS jobs of ~128 tokens in, 128 out (greedy,
#    ignore_eos) for both F16 models, SQLite in and out: output tokens/s over
#    the run's window (first claim to last result) and over its wall time
#    (model loading included), and the ratio to the engine-only figure
set -eu
here=$(cd "$(dirname "$0")/../.." && pwd)
bin=$(cd "$(dirname "${1:-$here/build/rocmforge}")" && pwd)/$(basename "${1:-rocmforge}")
jobs=${JOBS:-1024}
seqs=${SEQS:-256}
if [ -n "${2:-}" ]; then
    work=$2
    mkdir -p "$work"
else
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
fi
cd "$work"
say() { echo "bench_gpu: $*"; }
synth() { # synth FILE ARGS...
    f=$1
    shift
    [ -f "$f" ] || { say "writing $f"; "$bin" synth "$@" -o "$f" --quiet; }
}
synth l1b-f16.gguf --shape llama-3.2-1b --untied --type f16
synth l8b-f16.gguf --shape llama-3-8b --type f16
synth l8b-q4_0.gguf --shape llama-3-8b --type q4_0

"$bin" bench gpu -m l1b-f16.gguf -m l8b-f16.gguf --prompts "$jobs" --max-seqs "$seqs" | tee gpu.txt
"$bin" bench gpu -m l8b-q4_0.gguf --prompts 0 | tail -n +5 | grep -v '^decode:' | tee -a gpu.txt

"$here/tests/perf/make_jobs.sh" "$jobs" > jobs.jsonl
for m in l1b-f16 l8b-f16; do
    rm -f "$m.db" "$m.db-wal" "$m.db-shm"
    "$bin" submit "$m.db" jobs.jsonl --run bench --quiet
    t0=$(date +%s.%N)
    "$bin" run "$m.db" -m "$m.gguf" --device gpu --max-seqs "$seqs" --max-batched-tokens 4096 \
        --progress none 2> "$m.log"
    t1=$(date +%s.%N)
    grep -E 'loaded in|done:' "$m.log" | sed 's/^/    /'
    engine=$(awk -v m="$m.gguf" '$1 == m { print $NF }' gpu.txt)
    sqlite3 "$m.db" "SELECT printf('bench_gpu: %s via run: %d jobs, %.1f prompt tokens each; %.0f output tok/s over the running window (engine only %s: ratio %.3f), %.0f over %.1f s wall',
        '$m', count(*), avg(r.prompt_tokens),
        sum(r.completion_tokens) * 1000.0 / ((SELECT max(finished_ms) - min(claimed_ms) FROM jobs)),
        '$engine', sum(r.completion_tokens) * 1000.0 / ((SELECT max(finished_ms) - min(claimed_ms) FROM jobs)) / $engine,
        sum(r.completion_tokens) / ($t1 - $t0), $t1 - $t0) FROM results r"
done
