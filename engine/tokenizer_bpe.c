/* tokenizer_bpe.c - byte-level BPE ("gpt2" vocabularies) and its pre-tokenizers
 *
 * One stretch of text between special tokens is split into pieces by the
 * pre-tokenizer named in tokenizer.ggml.pre; each piece's UTF-8 bytes start
 * as one symbol per byte (the token of that byte's GPT-2 character) and merge
 * by rank. With ignore_merges (Llama 3), a piece whose byte-level spelling is
 * itself a token is emitted whole before any merging, as Hugging Face's BPE
 * does with that flag.
 *
 * The pre-tokenizers are the regular expressions of the models'
 * tokenizer.json (and llama.cpp's src/llama-vocab.cpp), written out by hand.
 * Each match function below reproduces what a backtracking engine does with
 * its expression at one position: alternatives are tried in order and the
 * first that matches wins, not the longest. The expressions:
 *
 *   gpt-2      's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *   llama-bpe  (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
 *              ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 *   qwen2      as llama-bpe with \p{N} for \p{N}{1,3}, after NFC
 *   smollm     \p{N}, then gpt-2 on each piece
 *   default    [\p{P}\$\+<=>\^~\|]+, then gpt-2, then \p{N}+, then
 *              [0-9][0-9][0-9], each on the pieces of the one before
 *
 * (?i:...) is ASCII-only, as the reference runs it ((?i:'s) becomes '[sS]).
 * Where one expression follows another, text between matches is a piece too.
 * \s is JavaScript's (see unicode.h), so U+0085 is not a space and U+FEFF is.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"
#include "unicode.h"

/* ------------------------------------------------------------------------
 * Pre-tokenizers
 * ------------------------------------------------------------------------ */

typedef struct split split_t;
/* End of the match at i in [i, end), or i when there is none. */
typedef size_t (*match_fn)(const split_t *sp, size_t i, size_t end);

struct split {
    const uint32_t *cp;     /* code points of the text */
    const uint8_t *fl;      /* their RF__UC_* flags */
    const uint32_t *offs;   /* byte offset of each code point, [n + 1] */
    const match_fn *stages;
    size_t n_stages;
    rf__piece_fn piece;
    void *ctx;
};

#define LNS (RF__UC_LETTER | RF__UC_NUMBER | RF__UC_SPACE)

static inline uint32_t ascii_lower(uint32_t c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static inline size_t run_of(const uint8_t *fl, size_t j, size_t end, unsigned mask)
{
    while (j < end && (fl[j] & mask))
        j++;
    return j;
}

/* Characters that are neither space, letter nor number: [^\s\p{L}\p{N}]. */
static inline size_t run_of_other(const uint8_t *fl, size_t j, size_t end)
{
    while (j < end && !(fl[j] & LNS))
        j++;
    return j;
}

/* \s+(?!\S)|\s+ at a whitespace character i: the whole run when it ends the
 * text, else the run less its last character (which then leads the next
 * piece, " word"), else the single character. */
static inline size_t whitespace_run(const uint8_t *fl, size_t i, size_t end)
{
    size_t q = run_of(fl, i + 1, end, RF__UC_SPACE);
    if (q == end || q - i == 1)
        return q;
    return q - 1;
}

static size_t contraction(const uint32_t *cp, size_t i, size_t end, bool any_case)
{
    if (cp[i] != '\'' || i + 1 >= end)
        return i;
    uint32_t c1 = any_case ? ascii_lower(cp[i + 1]) : cp[i + 1];
    if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd')
        return i + 2;
    if (i + 2 < end) {
        uint32_t c2 = any_case ? ascii_lower(cp[i + 2]) : cp[i + 2];
        if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l'))
            return i + 3;
    }
    return i;
}

static size_t match_gpt2(const split_t *sp, size_t i, size_t end)
{
    const uint32_t *cp = sp->cp;
    const uint8_t *fl = sp->fl;
    size_t e = contraction(cp, i, end, false);
    if (e > i)
        return e;
    bool space_then = cp[i] == ' ' && i + 1 < end;
    unsigned f = fl[i];
    unsigned next = space_then ? fl[i + 1] : 0;
    if (space_then && (next & RF__UC_LETTER))
        return run_of(fl, i + 2, end, RF__UC_LETTER);
    if (f & RF__UC_LETTER)
        return run_of(fl, i + 1, end, RF__UC_LETTER);
    if (space_then && (next & RF__UC_NUMBER))
        return run_of(fl, i + 2, end, RF__UC_NUMBER);
    if (f & RF__UC_NUMBER)
        return run_of(fl, i + 1, end, RF__UC_NUMBER);
    if (space_then && !(next & LNS))
        return run_of_other(fl, i + 2, end);
    if (!(f & LNS))
        return run_of_other(fl, i + 1, end);
    return whitespace_run(fl, i, end);
}

static size_t match_llama3_like(const split_t *sp, size_t i, size_t end, size_t max_digits)
{
    const uint32_t *cp = sp->cp;
    const uint8_t *fl = sp->fl;
    size_t e = contraction(cp, i, end, true);
    if (e > i)
        return e;
    unsigned f = fl[i];
    /* [^\r\n\p{L}\p{N}]?\p{L}+ */
    if (f & RF__UC_LETTER)
        return run_of(fl, i + 1, end, RF__UC_LETTER);
    if (!(f & (RF__UC_CRLF | RF__UC_LETTER | RF__UC_NUMBER)) && i + 1 < end &&
        (fl[i + 1] & RF__UC_LETTER))
        return run_of(fl, i + 2, end, RF__UC_LETTER);
    /* \p{N}{1,max_digits} */
    if (f & RF__UC_NUMBER) {
        size_t j = i + 1;
        while (j < end && j - i < max_digits && (fl[j] & RF__UC_NUMBER))
            j++;
        return j;
    }
    /* ' ?[^\s\p{L}\p{N}]+[\r\n]*' */
    size_t k = i;
    if (cp[i] == ' ' && i + 1 < end && !(fl[i + 1] & LNS))
        k = i + 1;
    if (!(fl[k] & LNS)) {
        size_t j = run_of_other(fl, k + 1, end);
        return run_of(fl, j, end, RF__UC_CRLF);
    }
    /* Only whitespace is left. \s*[\r\n]+ matches up to the last line break
     * of the run (the greedy \s* gives back what [\r\n]+ needs). */
    size_t q = i + 1, last_break = (f & RF__UC_CRLF) ? i + 1 : 0;
    while (q < end && (fl[q] & RF__UC_SPACE)) {
        if (fl[q] & RF__UC_CRLF)
            last_break = q + 1;
        q++;
    }
    if (last_break > 0)
        return last_break;
    if (q == end || q - i == 1)
        return q;
    return q - 1;
}

static size_t match_llama3(const split_t *sp, size_t i, size_t end)
{
    return match_llama3_like(sp, i, end, 3);
}

static size_t match_qwen2(const split_t *sp, size_t i, size_t end)
{
    return match_llama3_like(sp, i, end, 1);
}

/* \p{N} */
static size_t match_one_number(const split_t *sp, size_t i, size_t end)
{
    return (sp->fl[i] & RF__UC_NUMBER) ? i + 1 : i;
}

/* \p{N}+ */
static size_t match_numbers(const split_t *sp, size_t i, size_t end)
{
    return run_of(sp->fl, i, end, RF__UC_NUMBER);
}

/* [\p{P}\$\+<=>\^~\|]+ */
static bool default_punct(const split_t *sp, size_t j)
{
    uint32_t c = sp->cp[j];
    return (sp->fl[j] & RF__UC_PUNCT) || c == '$' || c == '+' || c == '<' || c == '=' ||
           c == '>' || c == '^' || c == '~' || c == '|';
}

static size_t match_default_punct(const split_t *sp, size_t i, size_t end)
{
    size_t j = i;
    while (j < end && default_punct(sp, j))
        j++;
    return j;
}

/* [0-9][0-9][0-9] */
static size_t match_three_digits(const split_t *sp, size_t i, size_t end)
{
    for (size_t k = 0; k < 3; k++)
        if (i + k >= end || sp->cp[i + k] < '0' || sp->cp[i + k] > '9')
            return i;
    return i + 3;
}

static const match_fn stages_gpt2[] = {match_gpt2};
static const match_fn stages_llama3[] = {match_llama3};
static const match_fn stages_qwen2[] = {match_qwen2};
static const match_fn stages_smollm[] = {match_one_number, match_gpt2};
static const match_fn stages_default[] = {match_default_punct, match_gpt2, match_numbers,
                                          match_three_digits};

/* Apply stage to [a, b): each match and each stretch between matches goes
 * on to the next stage; past the last stage it is a piece. */
static int split_stage(const split_t *sp, size_t stage, size_t a, size_t b)
{
    if (stage == sp->n_stages)
        return sp->piece(sp->ctx, sp->offs[a], sp->offs[b]);
    match_fn match = sp->stages[stage];
    size_t gap = a, i = a;
    int rc;
    while (i < b) {
        size_t e = match(sp, i, b);
        if (e == i) {
            i++;
            continue;
        }
        if (gap < i && (rc = split_stage(sp, stage + 1, gap, i)) != 0)
            return rc;
        if ((rc = split_stage(sp, stage + 1, i, e)) != 0)
            return rc;
        i = gap = e;
    }
    return gap < b ? split_stage(sp, stage + 1, gap, b) : 0;
}

static int reserve_cps(rf__work_t *w, size_t n)
{
    if (n <= w->cps_cap)
        return 0;
    if (n > SIZE_MAX / sizeof(uint32_t))
        return -ENOMEM;
    size_t cap = w->cps_cap ? w->cps_cap : 256;
    while (cap < n)
        cap = cap > SIZE_MAX / 4 ? n : cap * 2;
    uint32_t *cps = realloc(w->cps, cap * sizeof *cps);
    if (cps)
        w->cps = cps;
    uint32_t *offs = realloc(w->offs, (cap + 1) * sizeof *offs);
    if (offs)
        w->offs = offs;
    uint8_t *flags = realloc(w->flags, cap);
    if (flags)
        w->flags = flags;
    if (!cps || !offs || !flags)
        return -ENOMEM;
    w->cps_cap = cap;
    return 0;
}

int rf__pretokenize(rf__pre_t pre, rf__work_t *w, const char *text, size_t len,
                    rf__piece_fn piece, void *ctx)
{
    int rc = reserve_cps(w, len);
    if (rc < 0)
        return rc;
    size_t n = 0;
    for (size_t pos = 0; pos < len; n++) {
        w->offs[n] = (uint32_t)pos;
        unsigned char c = (unsigned char)text[pos];
        uint32_t cp = c < 0x80 ? (pos++, c) : rf__utf8_next(text, len, &pos);
        w->cps[n] = cp;
        w->flags[n] = (uint8_t)rf__uc_flags(cp);
    }
    w->offs[n] = (uint32_t)len;
    split_t sp = {w->cps, w->flags, w->offs, NULL, 0, piece, ctx};
    switch (pre) {
    case RF__PRE_GPT2:
        sp.stages = stages_gpt2;
        sp.n_stages = 1;
        break;
    case RF__PRE_LLAMA3:
        sp.stages = stages_llama3;
        sp.n_stages = 1;
        break;
    case RF__PRE_QWEN2:
        sp.stages = stages_qwen2;
        sp.n_stages = 1;
        break;
    case RF__PRE_SMOLLM:
        sp.stages = stages_smollm;
        sp.n_stages = 2;
        break;
    case RF__PRE_DEFAULT:
        sp.stages = stages_default;
        sp.n_stages = 4;
        break;
    case RF__PRE_NONE:
        break; /* no stages: the whole text is one piece */
    }
    return n > 0 ? split_stage(&sp, 0, 0, n) : 0;
}

/* ------------------------------------------------------------------------
 * Byte-level BPE
 * ------------------------------------------------------------------------ */

typedef struct bpe_ctx {
    const rf_tokenizer_t *tok;
    rf__work_t *w;
    const char *text;
    rf_tokens_t *out;
} bpe_ctx_t;

static int bpe_piece(void *ctx, size_t start, size_t end)
{
    bpe_ctx_t *c = ctx;
    const rf_tokenizer_t *tok = c->tok;
    rf__work_t *w = c->w;
    const unsigned char *bytes = (const unsigned char *)c->text + start;
    size_t n = end - start;
    int rc;
    if (n == 1)
        return rf_tokens_push(c->out, tok->byte_ids[bytes[0]]);
    if (tok->ignore_merges) {
        if ((rc = rf__work_reserve_buf(w, 2 * n)) < 0)
            return rc;
        size_t m = 0;
        for (size_t k = 0; k < n; k++) {
            unsigned b = bytes[k];
            w->buf[m++] = tok->byte_chars[b][0];
            if (tok->byte_char_len[b] == 2)
                w->buf[m++] = tok->byte_chars[b][1];
        }
        int32_t id = rf__tok_lookup(tok, w->buf, m);
        if (id >= 0)
            return rf_tokens_push(c->out, id);
    }
    if ((rc = rf__work_reserve_syms(w, n)) < 0)
        return rc;
    for (size_t k = 0; k < n; k++) {
        w->syms[k].id = tok->byte_ids[bytes[k]];
        w->syms[k].start = (uint32_t)k;
        w->syms[k].len = 1;
    }
    int32_t first;
    if ((rc = rf__bpe_merge(tok, w, n, &first)) < 0)
        return rc;
    for (int32_t i = first; i >= 0; i = w->syms[i].next)
        if ((rc = rf_tokens_push(c->out, w->syms[i].id)) < 0)
            return rc;
    return 0;
}

int rf__bpe_encode(const rf_tokenizer_t *tok, rf__work_t *w, const char *text, size_t len,
                   rf_tokens_t *out)
{
    char *nfc = NULL;
    if (tok->pre == RF__PRE_QWEN2) {
        size_t nfc_len;
        int rc = rf__uc_nfc(text, len, &nfc, &nfc_len);
        if (rc < 0)
            return rc;
        if (nfc != NULL) {
            text = nfc;
            len = nfc_len;
        }
    }
    bpe_ctx_t ctx = {tok, w, text, out};
    int rc = rf__pretokenize(tok->pre, w, text, len, bpe_piece, &ctx);
    free(nfc);
    return rc;
}
