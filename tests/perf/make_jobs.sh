#!/bin/sh
# make_jobs.sh - a JSONL file of N benchmark jobs: prompts of random words,
# greedy, ignore_eos, so every job generates exactly OUT tokens
#
# usage: tests/perf/make_jobs.sh N [WORDS] [OUT] [SEED] > jobs.jsonl
#   N      jobs (custom_id p0 .. pN-1)
#   WORDS  random lowercase words per prompt, 3 to 8 letters each (default 20:
#          127 tokens on average, BOS included, with the vocabulary `rocmforge
#          synth` writes for the Llama shapes; 22 words make 140)
#   OUT    max_tokens of each job (default 128)
#   SEED   seed of the word generator (default 1): same arguments, same file
set -eu
n=${1:?usage: make_jobs.sh N [WORDS] [OUT] [SEED]}
words=${2:-20}
out=${3:-128}
seed=${4:-1}
awk -v n="$n" -v words="$words" -v out="$out" -v seed="$seed" 'BEGIN {
    srand(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    for (i = 0; i < n; i++) {
        p = ""
        for (w = 0; w < words; w++) {
            len = 3 + int(rand() * 6)
            word = ""
            for (k = 0; k < len; k++)
                word = word substr(letters, 1 + int(rand() * 26), 1)
            p = p (w ? " " : "") word
        }
        printf "{\"custom_id\": \"p%d\", \"prompt\": \"%s\", \"max_tokens\": %d, " \
               "\"temperature\": 0, \"ignore_eos\": true}\n", i, p, out
    }
}'
