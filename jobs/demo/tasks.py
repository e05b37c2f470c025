"""tasks.py - the demo model's synthetic tasks, its chat format and its splits

Pure Python (no numpy, no torch): train.py imports it on the GPU machine, and
make_examples.py and eval_engine.py import it on any machine, so the held-out
prompts are the same everywhere.

Six tasks, each with one exactly checkable answer (a string without spaces):

    add       what is 482 + 37?                -> 519        (operands 0..999)
    sub       what is 482 - 37?                -> 445        (0..999, never negative)
    reverse   reverse QWKX                     -> XKWQ       (3..8 letters A-Z)
    sort      sort the letters of QWKX         -> KQWX       (3..8 letters A-Z)
    count     count the letter B in ABBEDB     -> 3          (4..12 letters A-E)
    convert   convert 27 km to m               -> 27000      (1..999; x1000, x100, x60)

Prompts are lower case and the strings upper case: the vocabulary is trained
on the prompts' words only (see BPE_WORDS below), so an upper-case string is
always one token per letter and reversing or sorting it is a token-level task.

Splits. The evaluation split is EVAL_PER_TASK problems per task drawn with
EVAL_SEED. Each problem has a key (the operands, the string, the number and
factor of a conversion); training draws with TRAIN_SEED and skips every
problem whose key is in the evaluation split, so no evaluation prompt and no
evaluation problem (for conversions: no number at the same factor) is ever
trained on.
"""

import random

TASKS = ("add", "sub", "reverse", "sort", "count", "convert")
EVAL_SEED = 20261123
TRAIN_SEED = 7
EVAL_PER_TASK = 60
MAX_ANSWER_TOKENS = 12  # longest answer: 8 letters or 5 digits, plus <|im_end|>

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")  # ids 0, 1, 2
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
COUNT_LETTERS = "ABCDE"
# (from, to, factor): integer answers only.
UNITS = (("km", "m", 1000), ("kg", "g", 1000), ("l", "ml", 1000),
         ("m", "cm", 100), ("h", "min", 60), ("min", "s", 60))


def chat_prompt(user_text):
    """The ChatML rendering of one user turn plus the assistant's opening,
    byte for byte what CHAT_TEMPLATE renders with add_generation_prompt."""
    return f"<|im_start|>user\n{user_text}<|im_end|>\n<|im_start|>assistant\n"


def _number(rng, max_digits=3):
    """A number of 1..max_digits digits, the digit count drawn uniformly so
    that short numbers are as common as long ones."""
    digits = rng.randrange(1, max_digits + 1)
    lo = 0 if digits == 1 else 10 ** (digits - 1)
    return rng.randrange(lo, 10 ** digits)


def _string(rng, alphabet, lo, hi):
    return "".join(rng.choice(alphabet) for _ in range(rng.randrange(lo, hi + 1)))


def make_problem(task, rng):
    """One problem of `task`: (key, user_text, answer)."""
    if task == "add":
        a, b = _number(rng), _number(rng)
        return ("add", a, b), f"what is {a} + {b}?", str(a + b)
    if task == "sub":
        a, b = _number(rng), _number(rng)
        a, b = max(a, b), min(a, b)
        return ("sub", a, b), f"what is {a} - {b}?", str(a - b)
    if task == "reverse":
        s = _string(rng, LETTERS, 3, 8)
        return ("reverse", s), f"reverse {s}", s[::-1]
    if task == "sort":
        s = _string(rng, LETTERS, 3, 8)
        return ("sort", s), f"sort the letters of {s}", "".join(sorted(s))
    if task == "count":
        s = _string(rng, COUNT_LETTERS, 4, 12)
        c = rng.choice(COUNT_LETTERS)
        return ("count", c, s), f"count the letter {c} in {s}", str(s.count(c))
    if task == "convert":
        src, dst, factor = rng.choice(UNITS)
        n = rng.randrange(1, 1000) if rng.random() < 0.8 else rng.randrange(1, 100)
        return ("convert", factor, n), f"convert {n} {src} to {dst}", str(n * factor)
    raise ValueError(f"unknown task {task!r}")


def eval_split():
    """The held-out problems: a list of dicts (id, task, user, expected), in a
    fixed order, EVAL_PER_TASK per task, no two with the same key."""
    rng = random.Random(EVAL_SEED)
    items, keys = [], set()
    for task in TASKS:
        n = 0
        while n < EVAL_PER_TASK:
            key, user, answer = make_problem(task, rng)
            if key in keys:
                continue
            keys.add(key)
            n += 1
            items.append({"id": f"eval-{task}-{n:03d}", "task": task, "user": user,
                          "expected": answer})
    return items


def eval_keys():
    rng = random.Random(EVAL_SEED)
    keys = set()
    for task in TASKS:
        n = 0
        while n < EVAL_PER_TASK:
            key, _, _ = make_problem(task, rng)
            if key not in keys:
                keys.add(key)
                n += 1
    return keys


def train_stream(seed=TRAIN_SEED):
    """Endless training problems (task, user_text, answer), tasks in equal
    shares, never a problem of the evaluation split."""
    rng = random.Random(seed)
    held_out = eval_keys()
    while True:
        task = TASKS[rng.randrange(len(TASKS))]
        key, user, answer = make_problem(task, rng)
        if key in held_out:
            continue
        yield task, user, answer


# Words the vocabulary is trained on besides the prompts' own: enough common
# English that a free-form prompt does not fall apart into single bytes. No
# upper-case letters anywhere (see the module comment).
BPE_WORDS = """
the of and to in is it you that he was for on are as with his they at be this have from
or one had by word but not what all were we when your can said there use an each which
she do how their if will up other about out many then them these so some her would make
like him into time has look two more write go see number no way could people my than
first water been call who oil its now find long down day did get come made may part over
new sound take only little work know place year live me back give most very after thing
our just name good sentence man think say great where help through much before line right
too mean old any same tell boy follow came want show also around form three small set put
end does another well large must big even such because turn here why ask went men read
need land different home us move try kind hand picture again change off play spell air
away animal house point page letter mother answer found study still learn should world
hello please thanks yes question count letters string reverse sort convert what plus
minus equals sum difference hours minutes seconds meters kilometers grams kilograms
litres millilitres centimeters assistant user system
"""


def bpe_corpus(n_examples=20000, seed=TRAIN_SEED + 1):
    """Text the BPE vocabulary is trained on: training prompts and answers laid
    out as the chat format lays them out, without the special tokens (they are
    added tokens, never merged) and without the upper-case strings, plus
    BPE_WORDS."""
    rng = random.Random(seed)
    out = []
    for _ in range(n_examples):
        task = TASKS[rng.randrange(len(TASKS))]
        _, user, answer = make_problem(task, rng)
        if task in ("reverse", "sort", "count"):
            user = " ".join(w for w in user.split(" ") if not w.isupper())
            answer = answer if answer.isdigit() else ""
        out.append(f"user\n{user}\nassistant\n{answer}\n")
    words = BPE_WORDS.split()
    for _ in range(n_examples // 4):
        out.append(" ".join(rng.choice(words) for _ in range(rng.randrange(3, 12))) + ".\n")
    return out
