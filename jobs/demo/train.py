"""train.py - train the demo model: vocabulary, model, evaluation, GGUF export

Runs on a machine with one CUDA GPU, torch, transformers and tokenizers (the
project's H100 machine; a few minutes). From the repository root:

    python3 jobs/demo/train.py --out OUT_DIR

writes into OUT_DIR:

    demo-f32.gguf    the model, GGUF v3, every tensor F32 (tests/fixtures/gen/gguf_writer_np.py)
    tokenizer.json   the Hugging Face tokenizer the vocabulary came from
    hf_ids.jsonl     per evaluation prompt: the chat-rendered prompt's token ids (HF tokenizers)
    pt_eval.jsonl    per evaluation prompt: PyTorch's greedy output, its ids, exact match,
                     the smallest top-1/top-2 logit gap over the answer, top-5 first-token logprobs
    metrics.json     configuration, parameter count, loss curve, accuracy per task, versions

Steps, in order:
  1. A byte-level BPE vocabulary trained with `tokenizers` on tasks.bpe_corpus():
     NFC, then the Qwen2 pre-tokenizer expression (single digits) as a Split,
     then ByteLevel without its own expression; special tokens <|endoftext|>,
     <|im_start|>, <|im_end|> at ids 0, 1, 2.
  2. A pool of training problems (tasks.train_stream: the evaluation split is
     never drawn), each "chat prompt ids + answer ids + <|im_end|>", loss only
     on the answer and <|im_end|>. The answer is tokenized on its own, as the
     engine generates it after the prompt.
  3. LlamaForCausalLM (GQA, RoPE, SwiGLU, tied embeddings) trained with AdamW
     under bf16 autocast, warm-up then cosine decay.
  4. Greedy evaluation in float32 on the held-out split, and again with the
     weights rounded to float16 (what the F16 GGUF holds).
  5. Export with llama.cpp's tensor names and keys; q/k rows permuted from
     Hugging Face's rotate-half order to the interleaved order of arch llama.

The F16 and Q8_0 files are made from demo-f32.gguf by `rocmforge quantize`
(see jobs/demo/README.md).
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "fixtures", "gen"))
import tasks  # noqa: E402
import gguf_writer_np as gw  # noqa: E402

# The Qwen2 pre-tokenizer: Llama 3's expression with single digits.
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
               r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
RMS_EPS = 1e-5
ROPE_THETA = 10000.0
CONTEXT_LENGTH = 256


def log(msg):
    print(msg, flush=True)


# ---- vocabulary ----

def train_tokenizer(vocab_size):
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False,
                                  special_tokens=list(tasks.SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(tasks.bpe_corpus(), trainer)
    for i, s in enumerate(tasks.SPECIAL_TOKENS):
        if tok.token_to_id(s) != i:
            raise SystemExit(f"special token {s} has id {tok.token_to_id(s)}, expected {i}")
    return tok


def tokenizer_tables(tok):
    """tokens, token types and merges as llama.cpp's converter writes them."""
    vocab = tok.get_vocab(with_added_tokens=True)
    n = len(vocab)
    tokens = [None] * n
    for s, i in vocab.items():
        tokens[i] = s
    if any(t is None for t in tokens):
        raise SystemExit("vocabulary ids are not contiguous")
    special = set(tasks.SPECIAL_TOKENS)
    types = [3 if t in special else 1 for t in tokens]  # CONTROL / NORMAL
    merges = json.loads(tok.to_str())["model"]["merges"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in merges]
    return tokens, types, merges


# ---- data ----

def build_pool(tok, n):
    im_end = tok.token_to_id("<|im_end|>")
    stream = tasks.train_stream()
    probs = [next(stream) for _ in range(n)]
    p_ids = tok.encode_batch([tasks.chat_prompt(u) for _, u, _ in probs])
    a_ids = tok.encode_batch([a for _, _, a in probs])
    seqs = [p.ids + a.ids + [im_end] for p, a in zip(p_ids, a_ids)]
    length = max(len(s) for s in seqs)
    x = np.zeros((n, length), dtype=np.int64)  # padded with <|endoftext|> (0)
    y = np.full((n, length), -100, dtype=np.int64)
    for r, (s, p) in enumerate(zip(seqs, p_ids)):
        x[r, :len(s)] = s
        y[r, len(p.ids) - 1:len(s) - 1] = s[len(p.ids):]  # position t predicts token t+1
    return torch.from_numpy(x), torch.from_numpy(y), length


# ---- model ----

def make_model(args, vocab):
    from transformers import LlamaConfig, LlamaForCausalLM
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=args.hidden, intermediate_size=args.ff,
                      num_hidden_layers=args.layers, num_attention_heads=args.heads,
                      num_key_value_heads=args.kv_heads, head_dim=args.hidden // args.heads,
                      max_position_embeddings=CONTEXT_LENGTH, rms_norm_eps=RMS_EPS,
                      rope_theta=ROPE_THETA, tie_word_embeddings=True, hidden_act="silu",
                      bos_token_id=0, eos_token_id=2, pad_token_id=0, attention_bias=False,
                      mlp_bias=False, use_cache=False, attention_dropout=0.0)
    model = LlamaForCausalLM(cfg)
    hd = args.hidden // args.heads
    want = 1.0 / ROPE_THETA ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd)
    found = [m.inv_freq for m in model.modules() if hasattr(m, "inv_freq")]
    if not found or any(not torch.allclose(f.detach().double().cpu(), want, rtol=1e-6) for f in found):
        raise SystemExit(f"HF RoPE inverse frequencies are not those of base {ROPE_THETA}")
    return model, cfg


def lr_at(step, steps, peak, warmup):
    if step < warmup:
        return peak * (step + 1) / warmup
    t = (step - warmup) / max(1, steps - warmup)
    return peak * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t)))


def train(model, x, y, args, dev):
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "embed" not in n]
    other = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "embed" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.wd},
                             {"params": other, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.98), eps=1e-8, fused=True)
    x, y = x.to(dev), y.to(dev)
    gen = torch.Generator(device=dev)
    gen.manual_seed(args.seed)
    steps, curve, t0 = args.steps, [], time.time()
    cut = None
    model.train()
    step = 0
    while step < steps:
        idx = torch.randint(x.shape[0], (args.batch,), generator=gen, device=dev)
        xb, yb = x[idx], y[idx]
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, args.lr, args.warmup)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(input_ids=xb).logits
        loss = F.cross_entropy(logits.float().view(-1, logits.shape[-1]), yb.view(-1),
                               ignore_index=-100)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if step == 200 and cut is None:
            torch.cuda.synchronize()
            per = (time.time() - t0) / step
            if per * steps > args.time_budget:
                cut = max(step + 1, int(args.time_budget / per))
                log(f"  {per * 1e3:.1f} ms/step: {steps} steps would take {per * steps:.0f} s "
                    f"> --time-budget {args.time_budget:.0f} s; cutting to {cut} steps "
                    f"(the schedule follows the new length)")
                steps = cut
        if step % 500 == 0 or step == steps:
            v = loss.item()
            curve.append([step, round(v, 5)])
            log(f"  step {step:6d}/{steps}  loss {v:.4f}  lr {opt.param_groups[0]['lr']:.2e}  "
                f"{time.time() - t0:6.1f} s")
    torch.cuda.synchronize()
    return {"steps_run": steps, "steps_asked": args.steps, "cut_by_time_budget": cut is not None,
            "train_seconds": round(time.time() - t0, 1), "loss_curve": curve}


# ---- evaluation ----

@torch.no_grad()
def greedy_eval(model, tok, items, dev):
    """Greedy decoding without a cache, prompts of equal length batched."""
    im_end = tok.token_to_id("<|im_end|>")
    model.eval()
    prompts = [tok.encode(tasks.chat_prompt(it["user"])).ids for it in items]
    by_len = {}
    for i, p in enumerate(prompts):
        by_len.setdefault(len(p), []).append(i)
    out = [None] * len(items)
    for _, rows in sorted(by_len.items()):
        x = torch.tensor([prompts[i] for i in rows], device=dev)
        gen = [[] for _ in rows]
        margin = [float("inf")] * len(rows)
        done = [False] * len(rows)
        first_top = None
        for step in range(tasks.MAX_ANSWER_TOKENS):
            logits = model(input_ids=x).logits[:, -1].float()
            top = logits.topk(2, dim=-1)
            if step == 0:
                lp = torch.log_softmax(logits, dim=-1).topk(5, dim=-1)
                first_top = [[[int(i), round(float(v), 5)] for i, v in zip(ii, vv)]
                             for ii, vv in zip(lp.indices.tolist(), lp.values.tolist())]
            nxt = top.indices[:, 0]
            for r in range(len(rows)):
                if done[r]:
                    continue
                gen[r].append(int(nxt[r]))
                margin[r] = min(margin[r], float(top.values[r, 0] - top.values[r, 1]))
                if int(nxt[r]) == im_end:
                    done[r] = True
            if all(done):
                break
            x = torch.cat([x, nxt[:, None]], dim=1)
        for r, i in enumerate(rows):
            ids = gen[r]
            text_ids = ids[:-1] if ids and ids[-1] == im_end else ids
            text = tok.decode(text_ids, skip_special_tokens=False)
            out[i] = {"ids": ids, "output": text, "finished": bool(ids and ids[-1] == im_end),
                      "correct": text == items[i]["expected"], "min_margin": round(margin[r], 4),
                      "first_top5_logprobs": first_top[r]}
    return prompts, out


def accuracy(items, res):
    per = {}
    for it, r in zip(items, res):
        c = per.setdefault(it["task"], [0, 0])
        c[0] += int(r["correct"])
        c[1] += 1
    total = [sum(v[0] for v in per.values()), sum(v[1] for v in per.values())]
    table = {k: {"correct": v[0], "total": v[1], "accuracy": round(100.0 * v[0] / v[1], 2)}
             for k, v in per.items()}
    table["overall"] = {"correct": total[0], "total": total[1],
                        "accuracy": round(100.0 * total[0] / total[1], 2)}
    return table


# ---- export ----

def permute(w, n_head):
    """Hugging Face's rotate-half row order of q/k -> the interleaved pair order
    that llama.cpp's arch llama (RoPE type NORM) expects."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, w.shape[1]).swapaxes(1, 2).reshape(w.shape)


def export_gguf(model, args, tok, path):
    sd = {k: v.detach().float().cpu().numpy() for k, v in model.state_dict().items()}
    t = {"token_embd.weight": sd["model.embed_tokens.weight"]}
    for i in range(args.layers):
        p, b = f"model.layers.{i}.", f"blk.{i}."
        t[b + "attn_norm.weight"] = sd[p + "input_layernorm.weight"]
        t[b + "attn_q.weight"] = permute(sd[p + "self_attn.q_proj.weight"], args.heads)
        t[b + "attn_k.weight"] = permute(sd[p + "self_attn.k_proj.weight"], args.kv_heads)
        t[b + "attn_v.weight"] = sd[p + "self_attn.v_proj.weight"]
        t[b + "attn_output.weight"] = sd[p + "self_attn.o_proj.weight"]
        t[b + "ffn_norm.weight"] = sd[p + "post_attention_layernorm.weight"]
        t[b + "ffn_gate.weight"] = sd[p + "mlp.gate_proj.weight"]
        t[b + "ffn_up.weight"] = sd[p + "mlp.up_proj.weight"]
        t[b + "ffn_down.weight"] = sd[p + "mlp.down_proj.weight"]
    t["output_norm.weight"] = sd["model.norm.weight"]
    tokens, types, merges = tokenizer_tables(tok)
    hd = args.hidden // args.heads
    a = "llama"
    g = gw.GGUFWriter()
    g.add_string("general.architecture", a)
    g.add_string("general.name", "rocmforge demo")
    g.add_string("general.description", "rocmforge demo model: arithmetic, string and unit-conversion "
                 "tasks in ChatML (jobs/demo/README.md)")
    g.add_u32("general.file_type", 0)  # all F32
    g.add_u32(f"{a}.vocab_size", len(tokens))
    g.add_u32(f"{a}.context_length", CONTEXT_LENGTH)
    g.add_u32(f"{a}.embedding_length", args.hidden)
    g.add_u32(f"{a}.block_count", args.layers)
    g.add_u32(f"{a}.feed_forward_length", args.ff)
    g.add_u32(f"{a}.attention.head_count", args.heads)
    g.add_u32(f"{a}.attention.head_count_kv", args.kv_heads)
    g.add_u32(f"{a}.attention.key_length", hd)
    g.add_u32(f"{a}.attention.value_length", hd)
    g.add_f32(f"{a}.attention.layer_norm_rms_epsilon", RMS_EPS)
    g.add_u32(f"{a}.rope.dimension_count", hd)
    g.add_f32(f"{a}.rope.freq_base", ROPE_THETA)
    g.add_string("tokenizer.ggml.model", "gpt2")
    g.add_string("tokenizer.ggml.pre", "qwen2")
    g.add_array("tokenizer.ggml.tokens", gw.STRING, tokens)
    g.add_array("tokenizer.ggml.token_type", gw.INT32, types)
    g.add_array("tokenizer.ggml.merges", gw.STRING, merges)
    g.add_u32("tokenizer.ggml.bos_token_id", tok.token_to_id("<|endoftext|>"))
    g.add_u32("tokenizer.ggml.eos_token_id", tok.token_to_id("<|im_end|>"))
    g.add_u32("tokenizer.ggml.padding_token_id", tok.token_to_id("<|endoftext|>"))
    g.add_bool("tokenizer.ggml.add_bos_token", False)
    g.add_string("tokenizer.chat_template", tasks.CHAT_TEMPLATE)
    for name, arr in t.items():
        g.add_tensor(name, np.ascontiguousarray(arr, dtype=np.float32))
    g.write(path)


# ---- main ----

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--vocab", type=int, default=1024, help="BPE vocabulary size cap")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--ff", type=int, default=576)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10000)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--lr", type=float, default=1.5e-3)
    ap.add_argument("--wd", type=float, default=0.1)
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--pool", type=int, default=2_000_000, help="training problems drawn")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--time-budget", type=float, default=300.0,
                    help="seconds of training; fewer steps are run if the first 200 project more")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(args.seed)
    dev = "cuda"
    t_start = time.time()

    import tokenizers
    import transformers
    tok = train_tokenizer(args.vocab)
    tok.save(os.path.join(args.out, "tokenizer.json"))
    vocab = tok.get_vocab_size(with_added_tokens=True)
    log(f"vocabulary: {vocab} tokens ({time.time() - t_start:.1f} s)")

    try:  # the template renders exactly what tasks.chat_prompt writes
        import jinja2
        r = jinja2.Environment().from_string(tasks.CHAT_TEMPLATE).render(
            messages=[{"role": "user", "content": "what is 1 + 2?"}], add_generation_prompt=True)
        if r != tasks.chat_prompt("what is 1 + 2?"):
            raise SystemExit(f"chat template renders {r!r}")
        log("chat template: jinja2 rendering equals tasks.chat_prompt")
    except ImportError:
        log("chat template: jinja2 missing, rendering not checked")

    x, y, length = build_pool(tok, args.pool)
    log(f"pool: {args.pool} problems, padded length {length} ({time.time() - t_start:.1f} s)")

    model, cfg = make_model(args, vocab)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"model: {n_params} parameters (tied embeddings counted once)")
    model.to(dev)
    tr = train(model, x, y, args, dev)

    items = tasks.eval_split()
    prompts, res = greedy_eval(model.float(), tok, items, dev)
    acc = accuracy(items, res)
    half = make_model(args, vocab)[0]
    half.load_state_dict({k: v.half().float() for k, v in model.state_dict().items()})
    _, res16 = greedy_eval(half.to(dev), tok, items, dev)
    acc16 = accuracy(items, res16)
    log(f"{'task':8s} {'fp32':>14s} {'f16 weights':>14s}")
    for k in list(tasks.TASKS) + ["overall"]:
        a, b = acc[k], acc16[k]
        log(f"{k:8s} {a['correct']:4d}/{a['total']:<4d}{a['accuracy']:6.2f}% "
            f"{b['correct']:4d}/{b['total']:<4d}{b['accuracy']:6.2f}%")

    with open(os.path.join(args.out, "hf_ids.jsonl"), "w") as f:
        for it, p in zip(items, prompts):
            ans = tok.encode(it["expected"]).ids
            f.write(json.dumps({"id": it["id"], "user": it["user"], "prompt_ids": p,
                                "answer_ids": ans}) + "\n")
    with open(os.path.join(args.out, "pt_eval.jsonl"), "w") as f:
        for it, r, r16 in zip(items, res, res16):
            f.write(json.dumps({"id": it["id"], "task": it["task"], "expected": it["expected"],
                                **r, "output_f16w": r16["output"],
                                "correct_f16w": r16["correct"]}) + "\n")
    export_gguf(model, args, tok, os.path.join(args.out, "demo-f32.gguf"))
    metrics = {"args": vars(args), "vocab_size": vocab, "parameters": n_params,
               "padded_length": length, "train": tr, "accuracy_fp32": acc,
               "accuracy_f16_weights": acc16, "torch": torch.__version__,
               "transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
               "numpy": np.__version__, "gpu": torch.cuda.get_device_name(0),
               "total_seconds": round(time.time() - t_start, 1)}
    with open(os.path.join(args.out, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=1)
    log(f"done in {metrics['total_seconds']} s")


if __name__ == "__main__":
    main()
