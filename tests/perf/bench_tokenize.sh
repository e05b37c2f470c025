#!/bin/sh
# bench_tokenize.sh - tokenizer MB/s for each conformance vocabulary, one thread
#
# usage: tests/perf/bench_tokenize.sh [BUILD_DIR]   (default: build)
#
# Needs a build whose tests have run once (ctest writes the vocab GGUFs that
# `rocmforge vocab import` makes from the reference packages into
# BUILD_DIR/tests/conformance). Two inputs:
#   english - every licence text in /usr/share/common-licenses (Debian's
#             base-files), about 300 KB of distinct English prose
#   mixed   - the conformance corpus (tests/conformance/corpus.jsonl): many
#             scripts, code, digits, emoji, whitespace runs, one string a line
set -eu
here=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$here/build}" && pwd)
vocabs=$build/tests/conformance
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for f in /usr/share/common-licenses/*; do
    [ -L "$f" ] || cat "$f"
done >"$work/english.txt"
node -e '
const fs = require("fs");
const lines = fs.readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean);
fs.writeFileSync(process.argv[2], lines.map((l) => JSON.parse(l)).join("\n"));
' "$here/tests/conformance/corpus.jsonl" "$work/mixed.txt"
for v in llama3 llama2 qwen3; do
    if [ ! -f "$vocabs/$v.gguf" ]; then
        echo "bench_tokenize: $vocabs/$v.gguf is missing: run ctest in $build first" >&2
        exit 1
    fi
    (cd "$work" && "$build/rocmforge" bench tokenize -m "$vocabs/$v.gguf" english.txt mixed.txt)
    echo
done
