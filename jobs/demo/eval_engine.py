"""eval_engine.py - the demo model's exact-match accuracy on rocmforge's CPU engine

Plain Python 3 (no third-party packages). From the repository root, after a build:

    python3 jobs/demo/eval_engine.py --rocmforge build/rocmforge --model jobs/demo/demo-f16.gguf

For each line of jobs/examples/eval.jsonl it runs

    rocmforge generate -m MODEL --chat -p USER_TEXT --temp 0 -n MAX_TOKENS --json --top-logprobs 2 -t 1

and counts an answer correct when the generated text (up to <|im_end|>) equals
metadata.expected exactly. With the PyTorch reference (reference/pt_eval.jsonl,
written by train.py) it also lists every prompt where the engine's token ids
differ from PyTorch's, with PyTorch's smallest top-1/top-2 logit gap and the
engine's log-probability gap at the first differing token: a tiny gap on both
sides points at rounding, a large one at a bug.

--check-tokens first compares the engine's token ids with Hugging Face's
(reference/hf_ids.jsonl): every chat-rendered evaluation prompt through
`rocmforge chat --ids`, every expected answer through `rocmforge tokenize --no-bos`.

Exit status: 0 when every check ran, 1 when a command failed, a token id
differed or the accuracy is under --min-accuracy, 2 for a usage error.
"""

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REF = os.path.join(HERE, "reference")


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(s) for s in f if s.strip()]


def run(cmd, stdin=None):
    p = subprocess.run(cmd, input=stdin, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:2])} exited {p.returncode}: {p.stderr.strip()}")
    return p.stdout


def check_tokens(exe, model, hf):
    bad = 0
    for r in hf:
        msgs = json.dumps([{"role": "user", "content": r["user"]}])
        got = [int(x) for x in run([exe, "chat", "-m", model, "--ids"], msgs).split()]
        if got != r["prompt_ids"]:
            bad += 1
            print(f"  prompt ids differ for {r['id']}: engine {got} HF {r['prompt_ids']}")
    answers = read_jsonl(os.path.join(HERE, "..", "examples", "eval.jsonl"))
    expected = {a["custom_id"]: a["metadata"]["expected"] for a in answers}
    for r in hf:
        got = [int(x) for x in run([exe, "tokenize", "-m", model, "--no-bos"],
                                   expected[r["id"]]).split()]
        if got != r["answer_ids"]:
            bad += 1
            print(f"  answer ids differ for {r['id']}: engine {got} HF {r['answer_ids']}")
    print(f"token ids: {2 * len(hf) - bad}/{2 * len(hf)} sequences identical to HF tokenizers "
          f"({len(hf)} chat prompts, {len(hf)} answers)")
    return bad


def generate(exe, model, text, max_tokens, threads):
    out = run([exe, "generate", "-m", model, "--chat", "-p", text, "--temp", "0",
               "-n", str(max_tokens), "--json", "--top-logprobs", "2", "-t", str(threads)])
    steps, summary = [], None
    for s in out.splitlines():
        obj = json.loads(s)
        if "finish_reason" in obj:
            summary = obj
        else:
            steps.append(obj)
    if summary is None:
        raise RuntimeError(f"generate printed no summary for {text!r}")
    return steps, summary


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rocmforge", required=True, help="the rocmforge executable")
    ap.add_argument("--model", required=True, help="a demo model GGUF")
    ap.add_argument("--eval", default=os.path.join(HERE, "..", "examples", "eval.jsonl"))
    ap.add_argument("--reference", default=os.path.join(REF, "pt_eval.jsonl"),
                    help="PyTorch's outputs ('' to skip the comparison)")
    ap.add_argument("--check-tokens", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json-out", help="write per-prompt results here")
    ap.add_argument("--min-accuracy", type=float,
                    help="exit 1 when the overall exact-match accuracy (percent) is below this")
    args = ap.parse_args()

    exe, model = args.rocmforge, args.model
    failed = 0
    if args.check_tokens:
        failed += check_tokens(exe, model, read_jsonl(os.path.join(REF, "hf_ids.jsonl")))

    jobs = read_jsonl(args.eval)
    ref = {r["id"]: r for r in read_jsonl(args.reference)} if args.reference else {}
    per, rows, differ, lp_diff = {}, [], [], []
    t0 = time.time()
    for j in jobs:
        meta = j["metadata"]
        text = j["messages"][0]["content"]
        steps, summary = generate(exe, model, text, j["max_tokens"], args.threads)
        ok = summary["text"] == meta["expected"]
        c = per.setdefault(meta["task"], [0, 0])
        c[0] += ok
        c[1] += 1
        ids = [s["id"] for s in steps]
        row = {"id": j["custom_id"], "task": meta["task"], "expected": meta["expected"],
               "output": summary["text"], "ids": ids, "correct": ok,
               "finish_reason": summary["finish_reason"]}
        rows.append(row)
        r = ref.get(j["custom_id"])
        if r is not None and steps:
            pt_first = {i: lp for i, lp in r["first_top5_logprobs"]}
            for alt in steps[0].get("top_logprobs", []):
                if alt["id"] in pt_first:
                    lp_diff.append(abs(alt["logprob"] - pt_first[alt["id"]]))
        if r is not None and r["ids"][: len(ids)] != ids:
            k = next(i for i, (a, b) in enumerate(zip(ids + [None] * 99, r["ids"])) if a != b)
            gap = None
            if k < len(steps) and len(steps[k].get("top_logprobs", [])) >= 2:
                t = steps[k]["top_logprobs"]
                gap = t[0]["logprob"] - t[1]["logprob"]
            differ.append((j["custom_id"], r["output"], summary["text"], r["min_margin"], k, gap))
    secs = time.time() - t0

    total = [sum(v[0] for v in per.values()), sum(v[1] for v in per.values())]
    ref_acc = {}
    for r in ref.values():
        c = ref_acc.setdefault(r["task"], [0, 0])
        c[0] += r["correct"]
        c[1] += 1
    print(f"model {os.path.basename(model)}: {total[1]} prompts in {secs:.1f} s "
          f"({args.threads} thread(s), one process per prompt)")
    print(f"{'task':8s} {'engine':>16s} {'PyTorch fp32':>16s}")
    for task in list(per) + ["overall"]:
        e = total if task == "overall" else per[task]
        p = ([sum(v[0] for v in ref_acc.values()), sum(v[1] for v in ref_acc.values())]
             if task == "overall" else ref_acc.get(task))
        ps = f"{p[0]:4d}/{p[1]:<4d}{100.0 * p[0] / p[1]:7.2f}%" if p else ""
        print(f"{task:8s} {e[0]:4d}/{e[1]:<4d}{100.0 * e[0] / e[1]:7.2f}% {ps:>16s}")
    if ref:
        print(f"token ids differing from PyTorch's greedy output: {len(differ)}/{len(jobs)}")
        if lp_diff:
            lp_diff.sort()
            print(f"first generated token, top-2 log-probabilities, engine vs PyTorch fp32: "
                  f"max |difference| {lp_diff[-1]:.2e}, median {lp_diff[len(lp_diff) // 2]:.2e} "
                  f"({len(lp_diff)} values)")
        for d in differ:
            print(f"  {d[0]}: PyTorch {d[1]!r} engine {d[2]!r}; PyTorch min top-2 logit gap "
                  f"{d[3]}, first difference at token {d[4]}, engine logprob gap there "
                  f"{'n/a' if d[5] is None else f'{d[5]:.4f}'}")
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
    overall = 100.0 * total[0] / total[1]
    if args.min_accuracy is not None and overall < args.min_accuracy:
        print(f"FAIL: overall accuracy {overall:.2f}% is below --min-accuracy {args.min_accuracy}")
        failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except RuntimeError as e:
        print(f"eval_engine.py: {e}", file=sys.stderr)
        sys.exit(1)
