#!/bin/sh
# multi_gpu.sh - one worker per GPU on one database: every job done once, none
# lost, a killed worker's jobs finished by the other, and the speed-up of all
# the GPUs over the first one alone
#
# usage: tests/perf/multi_gpu.sh [ROCMFORGE] [JOBS] [GPUS]
#   ROCMFORGE  the binary (default build/rocmforge, built with -DRF_GPU=CUDA|HIP)
#   JOBS       jobs of each run (default 4096: ~140 tokens in, 128 out, greedy)
#   GPUS       the --gpus list (default all), or workers:N for N workers on
#              this device without --gpus (a check of this script on a CPU)
# environment:
#   MODEL      a GGUF to run (default: `rocmforge synth --shape llama-3.2-1b
#              --untied --type f16`, written to the work directory)
#   RUN_OPTS   options for every run (default --max-seqs 256
#              --max-batched-tokens 4096 --gpu-memory 0.5)
#   WORK       work directory (default a new one under /tmp, removed at exit)
#
# Three runs of the same jobs, each on a fresh database:
#   one   `run --gpus FIRST`: the single-GPU figure
#   all   `run --gpus GPUS`: every job done exactly once (one claim, one result
#         each, no lease left), the split between the workers, and the
#         throughput ratio all/one
#   kill  `run --gpus GPUS --lease-ms 3000` with the last worker killed -9 once
#         a quarter of the jobs are done: the others finish everything, the
#         dead worker's jobs are reclaimed (attempts 2) and nothing is done twice
# Throughput is completion tokens over wall time of the `run` command, model
# loading included, and also over the running window (first claim to last
# result). Exit status 1 when a correctness check fails; the ratio is a
# measurement and only reported.
set -eu
here=$(cd "$(dirname "$0")/../.." && pwd)
bin=$(cd "$(dirname "${1:-$here/build/rocmforge}")" && pwd)/$(basename "${1:-rocmforge}")
jobs=${2:-4096}
gpus=${3:-all}
opts=${RUN_OPTS:---max-seqs 256 --max-batched-tokens 4096 --gpu-memory 0.5}
if [ -z "${WORK:-}" ]; then
    WORK=$(mktemp -d)
    trap 'rm -rf "$WORK"' EXIT
fi
mkdir -p "$WORK"
cd "$WORK"
say() { echo "multi_gpu: $*"; }
fail=0
check() { # check WHAT EXPECTED GOT
    if [ "$2" = "$3" ]; then say "ok   $1 ($3)"; else say "FAIL $1: expected $2, got $3"; fail=1; fi
}
q() { sqlite3 "$1" "$2"; }

place=--gpus
case $gpus in
workers:*)
    place=--workers
    n_workers=${gpus#workers:}
    gpus=$(seq -s, 0 $((n_workers - 1)))
    ;;
esac
if [ "$gpus" = all ]; then
    n_gpus=$(nvidia-smi -L 2>/dev/null | wc -l)
    [ "$n_gpus" -gt 0 ] || n_gpus=$(rocm-smi --showid 2>/dev/null | grep -c '^GPU\[') || true
    [ "$n_gpus" -ge 2 ] || { say "needs 2 or more GPUs, found ${n_gpus:-0}"; exit 2; }
    gpus=$(seq -s, 0 $((n_gpus - 1)))
fi
first=${gpus%%,*}
n_workers=$(echo "$gpus" | tr , '\n' | wc -l)

model=${MODEL:-$WORK/l1b.gguf}
if [ ! -f "$model" ]; then
    say "writing $model"
    "$bin" synth --shape llama-3.2-1b --untied --type f16 -o "$model" --quiet
fi
"$here/tests/perf/make_jobs.sh" "$jobs" 22 > jobs.jsonl

# where GPUS: the options that place the workers
where() {
    if [ $place = --gpus ]; then echo "--gpus $1"; else echo "--workers $(echo "$1" | tr , '\n' | wc -l)"; fi
}
# run NAME GPUS [EXTRA]: submit, run, check every job done once; sets secs
run() {
    rm -f "$1.db" "$1.db-wal" "$1.db-shm"
    "$bin" submit "$1.db" jobs.jsonl --run bench --quiet
    t0=$(date +%s.%N)
    # shellcheck disable=SC2086
    "$bin" run "$1.db" -m "$model" $(where "$2") $opts ${3:-} > "$1.log" 2>&1 &
    pid=$!
    if [ "${4:-}" = kill ]; then
        until [ "$(q "$1.db" "SELECT count(*) FROM jobs WHERE state='done'")" -ge $((jobs / 4)) ]; do
            kill -0 $pid 2>/dev/null || break
            sleep 0.2
        done
        victim=$(sed -n "s/.*worker $((n_workers - 1)) (.*) is pid \([0-9]*\).*/\1/p" "$1.log")
        say "killing worker $((n_workers - 1)) (pid $victim) with $(q "$1.db" "SELECT count(*) FROM jobs WHERE state='done'") jobs done"
        kill -9 "$victim"
    fi
    rc=0
    wait $pid || rc=$?
    t1=$(date +%s.%N)
    secs=$(awk "BEGIN { printf \"%.2f\", $t1 - $t0 }")
    tail -3 "$1.log" | sed 's/^/    /'
    if [ "${4:-}" = kill ]; then check "$1: launcher exit status (a worker was killed)" 1 "$rc"
    else check "$1: exit status" 0 "$rc"; fi
    check "$1: jobs done" "$jobs" "$(q "$1.db" "SELECT count(*) FROM jobs WHERE state='done'")"
    check "$1: jobs without exactly one result" 0 \
        "$(q "$1.db" "SELECT count(*) FROM jobs j WHERE (SELECT count(*) FROM results r WHERE r.job_id = j.job_id) <> 1")"
    check "$1: results of a wrong length" 0 \
        "$(q "$1.db" "SELECT count(*) FROM results WHERE completion_tokens <> 128")"
    check "$1: metrics rows" "$jobs" "$(q "$1.db" "SELECT count(*) FROM job_metrics")"
    check "$1: leases or checkpoints left" 0 \
        "$(q "$1.db" "SELECT count(*) FROM jobs WHERE lease_owner IS NOT NULL OR checkpoint IS NOT NULL")"
}
# rate DB SECS: "wall tok/s, window tok/s"
rate() {
    q "$1" "SELECT printf('%.0f %.0f', sum(completion_tokens) / $2,
              sum(completion_tokens) * 1000.0 / ((SELECT max(finished_ms) - min(claimed_ms) FROM jobs)))
            FROM results"
}

where_one=$(where "$first")
say "$jobs jobs, $(where "$gpus"), model $(basename "$model"), $opts"
run one "$first"
one_secs=$secs
check "one: claims" 1 "$(q one.db "SELECT max(attempts) FROM jobs")"
run all "$gpus"
all_secs=$secs
check "all: claims (none twice)" 1 "$(q all.db "SELECT max(attempts) FROM jobs")"
check "all: workers that did jobs" "$n_workers" "$(q all.db "SELECT count(DISTINCT worker_id) FROM job_metrics")"
q all.db "SELECT '    ' || worker_id || ': ' || count(*) || ' jobs' FROM job_metrics GROUP BY worker_id"
run kill "$gpus" "--lease-ms 3000" kill
check "kill: none claimed more than twice" 2 "$(q kill.db "SELECT max(attempts) FROM jobs")"
say "kill: $(q kill.db "SELECT count(*) FROM jobs WHERE attempts = 2") jobs reclaimed from the killed worker"
"$bin" export one.db --run bench --format simple 2>/dev/null | sort > one.out || true
"$bin" export all.db --run bench --format simple 2>/dev/null | sort > all.out || true
same=$(comm -12 one.out all.out | wc -l)
"$bin" export kill.db --run bench --format simple 2>/dev/null | sort > kill.out || true
say "outputs identical to one's: all $same of $jobs, kill $(comm -12 one.out kill.out | wc -l) of $jobs"
set -- $(rate one.db "$one_secs")
one_wall=$1 one_win=$2
set -- $(rate all.db "$all_secs")
all_wall=$1 all_win=$2
say "prompt tokens per job: $(q one.db "SELECT printf('%.1f', avg(prompt_tokens)) FROM results")"
printf 'multi_gpu: %-28s %10s %12s %12s\n' "output tokens/s" "wall s" "over wall" "over window"
printf 'multi_gpu: %-28s %10.1f %12s %12s\n' "one worker ($where_one)" "$one_secs" "$one_wall" "$one_win"
printf 'multi_gpu: %-28s %10.1f %12s %12s\n' "$n_workers workers ($(where "$gpus"))" "$all_secs" "$all_wall" "$all_win"
say "speed-up: $(awk "BEGIN { printf \"%.2fx wall, %.2fx running window\", $all_wall / $one_wall, $all_win / $one_win }")"
if [ $fail = 0 ]; then say "all checks passed"; else say "some checks FAILED"; fi
exit $fail
