"""make_examples.py - write the example job files of jobs/examples/

Plain Python 3 (no third-party packages). From the repository root:

    python3 jobs/demo/make_examples.py            # writes jobs/examples/*.jsonl
    python3 jobs/demo/make_examples.py --check    # exit 1 if a committed file differs

Every file is derived from tasks.py, so the evaluation prompts are exactly the
held-out split the model never saw (tasks.eval_split). The line shapes are
those of docs/submit.md.
"""

import argparse
import json
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import tasks  # noqa: E402

EXAMPLES = os.path.join(HERE, "..", "examples")

# Longest answer of each task in tokens (one per digit or letter) plus <|im_end|>.
MAX_TOKENS = {"add": 5, "sub": 4, "reverse": 9, "sort": 9, "count": 3, "convert": 7}


def line(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(", ", ": "))


def user(text):
    return [{"role": "user", "content": text}]


def eval_lines():
    for it in tasks.eval_split():
        yield line({"custom_id": it["id"], "messages": user(it["user"]), "temperature": 0,
                    "max_tokens": MAX_TOKENS[it["task"]],
                    "metadata": {"task": it["task"], "expected": it["expected"]}})


def generate_lines():
    """Sampling: seeds, several n, the usual knobs. Prompts are new problems
    (drawn with another seed), each with its answer in metadata."""
    rng = random.Random(11)
    shapes = [
        dict(temperature=0.7, n=4, seed=1),
        dict(temperature=1.0, n=8, seed=2),
        dict(temperature=1.0, top_k=5, n=3, seed=3),
        dict(temperature=0.8, top_p=0.9, n=5, seed=4),
        dict(temperature=1.2, min_p=0.05, n=2, seed=5),
        dict(temperature=0.7, n=1, seed=6, logprobs=True, top_logprobs=3),
        dict(temperature=1.0, n=6, seed=7, repetition_penalty=1.1),
        dict(temperature=0.9, n=3, seed=8, stop=["0"]),
        dict(temperature=3.0, n=4, seed=9),  # hot enough that the samples differ
    ]
    k = 0
    for task in tasks.TASKS:
        for shape in shapes[: 4 if task in ("add", "reverse") else 2]:
            _, text, answer = tasks.make_problem(task, rng)
            k += 1
            yield line({"custom_id": f"gen-{k:02d}", "messages": user(text),
                        "max_tokens": 12, **shape, "metadata": {"task": task, "expected": answer}})
    for shape in shapes[4:]:
        task = tasks.TASKS[k % len(tasks.TASKS)]
        _, text, answer = tasks.make_problem(task, rng)
        k += 1
        yield line({"custom_id": f"gen-{k:02d}", "messages": user(text), "max_tokens": 12,
                    **shape, "metadata": {"task": task, "expected": answer}})


def openai_lines():
    rng = random.Random(12)
    for k in range(12):
        task = tasks.TASKS[k % len(tasks.TASKS)]
        _, text, answer = tasks.make_problem(task, rng)
        body = {"model": "rocmforge-demo", "messages": user(text), "max_completion_tokens": 12,
                "temperature": 0}
        if k % 3 == 1:
            body.update(logprobs=True, top_logprobs=2)
        if k % 4 == 3:
            body.update(temperature=0.8, seed=k, n=2)
        yield line({"custom_id": f"request-{k + 1}", "method": "POST",
                    "url": "/v1/chat/completions", "body": body,
                    "metadata": {"task": task, "expected": answer}})


def bad_lines():
    """Good and bad lines mixed. Each bad line names, in its custom_id or
    (when it has none) in a comment below, the reason submit gives."""
    good = lambda cid, text, **kw: line({"custom_id": cid, "messages": user(text),
                                         "temperature": 0, "max_tokens": 8, **kw})
    yield good("ok-1", "what is 12 + 30?")
    yield '{"custom_id": "bad-json", "messages": [{"role": "user", "content": "what is 1 + 1?"}'
    yield good("ok-2", "reverse ABC")
    yield line({"custom_id": "bad-unknown-field", "messages": user("sort the letters of CAB"),
                "answer": "ABC"})
    yield line({"custom_id": "bad-temperature", "messages": user("what is 5 - 3?"),
                "temperature": -1})
    yield line({"custom_id": "bad-top-p", "messages": user("what is 5 - 3?"), "top_p": 0})
    yield line({"custom_id": "bad-n", "messages": user("what is 5 - 3?"), "n": 0})
    yield line({"custom_id": "bad-max-tokens-type", "messages": user("what is 5 - 3?"),
                "max_tokens": 1.5})
    yield good("ok-3", "count the letter A in ABACA")
    yield line({"custom_id": "bad-role", "messages": [{"role": "tool", "content": "x"}]})
    yield line({"custom_id": "bad-empty-messages", "messages": []})
    yield line({"custom_id": "bad-two-inputs", "prompt": "what is 1 + 1?",
                "messages": user("what is 1 + 1?")})
    yield line({"messages": user("what is 2 + 2?")})  # no custom_id
    yield line({"custom_id": "", "messages": user("what is 2 + 2?")})
    yield good("ok-1", "what is 99 + 1?")  # duplicate custom_id, other content
    yield line({"custom_id": "bad-url", "method": "POST", "url": "/v1/embeddings",
                "body": {"model": "m", "input": "hello"}})
    yield line({"custom_id": "bad-body-field", "method": "POST", "url": "/v1/chat/completions",
                "body": {"messages": user("what is 1 + 2?"), "stream": True}})
    yield '["custom_id", "not-an-object"]'
    yield ""
    yield line({"custom_id": "bad-not-before", "messages": user("what is 3 + 4?"),
                "not_before": "tomorrow"})
    yield good("ok-4", "convert 5 km to m")
    yield good("ok-1", "what is 12 + 30?")  # the same content again: already present, not an error


def score_lines():
    """Log-likelihood of the right answer and of wrong ones after the chat
    prompt: the right one should score highest. The context holds the ChatML
    markers as text, so it must be tokenized with special tokens recognised."""
    rng = random.Random(13)
    k = 0
    for task in tasks.TASKS:
        for _ in range(2):
            _, text, answer = tasks.make_problem(task, rng)
            wrong = wrong_answer(task, answer, rng)
            for label, cont in (("right", answer), ("wrong", wrong)):
                k += 1
                yield line({"custom_id": f"score-{k:02d}", "context": tasks.chat_prompt(text),
                            "continuation": cont,
                            "metadata": {"task": task, "candidate": label, "problem": text}})


def wrong_answer(task, answer, rng):
    if answer.isdigit():
        return str(int(answer) + rng.choice((1, 10, 100)))
    s = list(answer)
    i = rng.randrange(len(s) - 1)
    s[i], s[i + 1] = s[i + 1], s[i]
    if s == list(answer):
        s[0] = "Z" if s[0] != "Z" else "Y"
    return "".join(s)


FILES = {"eval.jsonl": eval_lines, "generate.jsonl": generate_lines,
         "openai_batch.jsonl": openai_lines, "bad_lines.jsonl": bad_lines,
         "score.jsonl": score_lines}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="compare with the files on disk")
    ap.add_argument("--out", default=EXAMPLES)
    args = ap.parse_args()
    differ = []
    for name, fn in FILES.items():
        text = "".join(s + "\n" for s in fn())
        path = os.path.join(args.out, name)
        if args.check:
            with open(path, encoding="utf-8") as f:
                if f.read() != text:
                    differ.append(name)
        else:
            os.makedirs(args.out, exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            print(f"{name}: {text.count(chr(10))} lines")
    if differ:
        print("differ from make_examples.py: " + ", ".join(differ))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
