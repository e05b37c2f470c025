/* tokenizer.c - vocabulary loading, special tokens, the merge loop, decoding
 *
 * This file builds an rf_tokenizer_t from a GGUF's tokenizer.ggml.* keys and
 * implements everything that does not depend on the model family: the split
 * of the text around special tokens, BOS/EOS, the merge loop both families
 * share, decoding and incremental decoding. tokenizer_spm.c and
 * tokenizer_bpe.c turn one stretch of ordinary text into ids.
 *
 * The reference is the Hugging Face tokenizer as transformers.js implements
 * it (@lenml/tokenizers 3.7.2), so where llama.cpp and that reference differ,
 * this file follows the reference:
 *   1. Invalid UTF-8 becomes U+FFFD before anything else (the reference only
 *      ever sees decoded JavaScript strings).
 *   2. Special tokens are found first, leftmost and longest, in the raw text;
 *      each stretch between them is normalised and tokenized on its own.
 *   3. Merges apply by rank with ties to the leftmost pair. A duplicated merge
 *      takes the rank of its last occurrence, as a JavaScript Map built from
 *      the merge list does.
 *   4. For an SPM vocabulary that carries tokenizer.ggml.merges (the Hugging
 *      Face import of Llama 2 does), those merges are used; without them the
 *      pair table is derived from the scores, as llama.cpp's SPM tokenizer
 *      merges: every split of a token into two tokens merges with the rank of
 *      the token's score.
 *
 *   5. Decoding gives special and added tokens as written and strips the SPM
 *      space prefix from the first piece that has bytes, as the reference's
 *      Strip decoder does; it does not apply clean_up_tokenization_spaces.
 *
 * Known gaps: a GGUF does not carry the added tokens' lstrip, rstrip and
 * single_word flags, so they are taken as false (true of Llama 2, Llama 3
 * and Qwen 3, whose added tokens all have them false).
 *
 * Design notes. The tokenizer is immutable after rf_tokenizer_open, so
 * encode and decode may run on many threads at once; each encode call keeps
 * its scratch memory in an rf__work_t on its own stack and frees it before
 * returning.
 */
#include "tokenizer.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"
#include "unicode.h"

/* ------------------------------------------------------------------------
 * Growable arrays
 * ------------------------------------------------------------------------ */

void rf_tokens_free(rf_tokens_t *t)
{
    if (t == NULL)
        return;
    free(t->ids);
    t->ids = NULL;
    t->n = t->cap = 0;
}

static int tokens_reserve(rf_tokens_t *t, size_t extra)
{
    if (t->cap - t->n >= extra)
        return 0;
    size_t cap = t->cap ? t->cap : 16;
    while (cap - t->n < extra) {
        if (cap > SIZE_MAX / 2 / sizeof(int32_t))
            return -ENOMEM;
        cap *= 2;
    }
    int32_t *ids = realloc(t->ids, cap * sizeof *ids);
    if (ids == NULL)
        return -ENOMEM;
    t->ids = ids;
    t->cap = cap;
    return 0;
}

int rf_tokens_push(rf_tokens_t *t, int32_t id)
{
    if (t->n == t->cap && tokens_reserve(t, 1) < 0)
        return -ENOMEM;
    t->ids[t->n++] = id;
    return 0;
}

void rf_bytes_free(rf_bytes_t *b)
{
    if (b == NULL)
        return;
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int rf_bytes_append(rf_bytes_t *b, const void *data, size_t len)
{
    /* Keep room for the NUL terminator after the data. */
    if (b->cap - b->len <= len) {
        if (len > SIZE_MAX / 2 - b->len)
            return -ENOMEM;
        size_t cap = b->cap ? b->cap : 64;
        while (cap - b->len <= len)
            cap *= 2;
        char *p = realloc(b->data, cap);
        if (p == NULL)
            return -ENOMEM;
        b->data = p;
        b->cap = cap;
    }
    if (len > 0)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = 0;
    return 0;
}

/* ------------------------------------------------------------------------
 * Hashing and the piece table
 * ------------------------------------------------------------------------ */

static uint64_t hash_bytes(const void *data, size_t n)
{
    const unsigned char *s = data;
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xA0761D6478BD642Full);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xFF51AFD7ED558CCDull;
        h ^= h >> 32;
        s += 8;
        n -= 8;
    }
    uint64_t w = 0;
    if (n > 0)
        memcpy(&w, s, n);
    h = (h ^ w) * 0xC4CEB9FE1A85EC53ull;
    h ^= h >> 29;
    h *= 0xFF51AFD7ED558CCDull;
    h ^= h >> 32;
    return h;
}

int32_t rf__tok_lookup(const rf_tokenizer_t *tok, const char *s, size_t n)
{
    uint64_t h = hash_bytes(s, n);
    uint32_t tag = (uint32_t)h;
    size_t mask = tok->slot_cap - 1;
    for (size_t i = (size_t)(h >> 32) & mask;; i = (i + 1) & mask) {
        int32_t id = tok->slots[i];
        if (id < 0)
            return -1;
        if (tok->hashes[id] == tag && tok->text_len[id] == n &&
            memcmp(tok->text + tok->text_off[id], s, n) == 0)
            return id;
    }
}

/* Insert id unless its piece is already present (the first id keeps it). */
static void piece_insert(rf_tokenizer_t *tok, int32_t id)
{
    const char *s = tok->text + tok->text_off[id];
    size_t n = tok->text_len[id];
    uint64_t h = hash_bytes(s, n);
    tok->hashes[id] = (uint32_t)h;
    size_t mask = tok->slot_cap - 1;
    for (size_t i = (size_t)(h >> 32) & mask;; i = (i + 1) & mask) {
        int32_t other = tok->slots[i];
        if (other < 0) {
            tok->slots[i] = id;
            return;
        }
        if (tok->hashes[other] == (uint32_t)h && tok->text_len[other] == n &&
            memcmp(tok->text + tok->text_off[other], s, n) == 0)
            return;
    }
}

/* ------------------------------------------------------------------------
 * Pair table
 * ------------------------------------------------------------------------ */

static inline size_t pair_slot(uint64_t key, size_t cap)
{
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 20) & (cap - 1);
}

static int pair_init(rf__pair_table_t *t, size_t n)
{
    size_t cap = 16;
    while (cap < n + n / 2) { /* load factor at most 2/3 */
        if (cap > SIZE_MAX / 4 / sizeof(uint64_t))
            return -ENOMEM;
        cap *= 2;
    }
    t->keys = malloc(cap * sizeof *t->keys);
    t->ranks = malloc(cap * sizeof *t->ranks);
    t->results = malloc(cap * sizeof *t->results);
    if (!t->keys || !t->ranks || !t->results)
        return -ENOMEM;
    memset(t->keys, 0xFF, cap * sizeof *t->keys);
    t->cap = cap;
    t->count = 0;
    return 0;
}

static void pair_free(rf__pair_table_t *t)
{
    free(t->keys);
    free(t->ranks);
    free(t->results);
    memset(t, 0, sizeof *t);
}

/* Insert or, when overwrite is set, replace. The table was sized for every
 * insertion up front, so it never fills. */
static void pair_put(rf__pair_table_t *t, int32_t left, int32_t right, uint32_t rank,
                     int32_t result, bool overwrite)
{
    uint64_t key = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
    size_t mask = t->cap - 1;
    for (size_t i = pair_slot(key, t->cap);; i = (i + 1) & mask) {
        if (t->keys[i] == RF__PAIR_EMPTY) {
            t->keys[i] = key;
            t->ranks[i] = rank;
            t->results[i] = result;
            t->count++;
            return;
        }
        if (t->keys[i] == key) {
            if (overwrite) {
                t->ranks[i] = rank;
                t->results[i] = result;
            }
            return;
        }
    }
}

uint32_t rf__pair_find(const rf__pair_table_t *t, int32_t left, int32_t right, int32_t *merged)
{
    if (left < 0 || right < 0 || t->cap == 0)
        return RF__RANK_NONE;
    uint64_t key = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
    size_t mask = t->cap - 1;
    for (size_t i = pair_slot(key, t->cap);; i = (i + 1) & mask) {
        uint64_t k = t->keys[i];
        if (k == key) {
            *merged = t->results[i];
            return t->ranks[i];
        }
        if (k == RF__PAIR_EMPTY)
            return RF__RANK_NONE;
    }
}

/* ------------------------------------------------------------------------
 * Scratch memory
 * ------------------------------------------------------------------------ */

void rf__work_free(rf__work_t *w)
{
    free(w->syms);
    free(w->heap);
    free(w->buf);
    free(w->cps);
    free(w->offs);
    free(w->flags);
    memset(w, 0, sizeof *w);
}

static size_t grow_cap(size_t have, size_t need)
{
    size_t cap = have ? have : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    return cap;
}

int rf__work_reserve_syms(rf__work_t *w, size_t n)
{
    if (n <= w->syms_cap)
        return 0;
    if (n > SIZE_MAX / sizeof(rf__sym_t))
        return -ENOMEM;
    size_t cap = grow_cap(w->syms_cap, n);
    rf__sym_t *p = realloc(w->syms, cap * sizeof *p);
    if (p == NULL)
        return -ENOMEM;
    w->syms = p;
    w->syms_cap = cap;
    return 0;
}

int rf__work_reserve_buf(rf__work_t *w, size_t n)
{
    if (n <= w->buf_cap)
        return 0;
    size_t cap = grow_cap(w->buf_cap, n);
    char *p = realloc(w->buf, cap);
    if (p == NULL)
        return -ENOMEM;
    w->buf = p;
    w->buf_cap = cap;
    return 0;
}

/* ------------------------------------------------------------------------
 * The merge loop
 * ------------------------------------------------------------------------ */

/* Pieces up to this many symbols merge by scanning a rank array, which for
 * the short pieces of pre-tokenized text is faster than a heap; longer ones
 * (SPM sections are whole paragraphs) use the heap. */
#define SMALL_PIECE 48

static int merge_small(const rf_tokenizer_t *tok, rf__work_t *w, size_t n)
{
    rf__sym_t *s = w->syms;
    uint32_t ranks[SMALL_PIECE];
    int32_t merged[SMALL_PIECE];
    for (size_t i = 0; i + 1 < n; i++)
        ranks[i] = rf__pair_find(&tok->pairs, s[i].id, s[i + 1].id, &merged[i]);
    while (n > 1) {
        size_t best = 0;
        uint32_t best_rank = RF__RANK_NONE;
        for (size_t i = 0; i + 1 < n; i++) {
            if (ranks[i] < best_rank) {
                best_rank = ranks[i];
                best = i;
            }
        }
        if (best_rank == RF__RANK_NONE)
            break;
        s[best].id = merged[best];
        s[best].len += s[best + 1].len;
        size_t tail = n - best - 2;
        memmove(&s[best + 1], &s[best + 2], tail * sizeof *s);
        memmove(&ranks[best + 1], &ranks[best + 2], (tail > 0 ? tail - 1 : 0) * sizeof *ranks);
        memmove(&merged[best + 1], &merged[best + 2], (tail > 0 ? tail - 1 : 0) * sizeof *merged);
        n--;
        if (best > 0)
            ranks[best - 1] = rf__pair_find(&tok->pairs, s[best - 1].id, s[best].id, &merged[best - 1]);
        if (best + 1 < n)
            ranks[best] = rf__pair_find(&tok->pairs, s[best].id, s[best + 1].id, &merged[best]);
    }
    for (size_t i = 0; i < n; i++) {
        s[i].prev = (int32_t)i - 1;
        s[i].next = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    return 0;
}

static bool heap_less(const rf__heap_entry_t *a, const rf__heap_entry_t *b)
{
    /* Symbol indices grow left to right, so the index orders by position. */
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static int heap_push(rf__work_t *w, const rf__heap_entry_t *e)
{
    if (w->heap_len == w->heap_cap) {
        size_t cap = grow_cap(w->heap_cap, w->heap_len + 1);
        if (cap > SIZE_MAX / sizeof *w->heap)
            return -ENOMEM;
        rf__heap_entry_t *h = realloc(w->heap, cap * sizeof *h);
        if (h == NULL)
            return -ENOMEM;
        w->heap = h;
        w->heap_cap = cap;
    }
    size_t i = w->heap_len++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!heap_less(e, &w->heap[parent]))
            break;
        w->heap[i] = w->heap[parent];
        i = parent;
    }
    w->heap[i] = *e;
    return 0;
}

static rf__heap_entry_t heap_pop(rf__work_t *w)
{
    rf__heap_entry_t top = w->heap[0];
    rf__heap_entry_t last = w->heap[--w->heap_len];
    size_t n = w->heap_len, i = 0;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= n)
            break;
        if (child + 1 < n && heap_less(&w->heap[child + 1], &w->heap[child]))
            child++;
        if (!heap_less(&w->heap[child], &last))
            break;
        w->heap[i] = w->heap[child];
        i = child;
    }
    if (n > 0)
        w->heap[i] = last;
    return top;
}

static int push_pair(const rf_tokenizer_t *tok, rf__work_t *w, int32_t left, int32_t right)
{
    if (left < 0 || right < 0)
        return 0;
    int32_t merged;
    uint32_t rank = rf__pair_find(&tok->pairs, w->syms[left].id, w->syms[right].id, &merged);
    if (rank == RF__RANK_NONE)
        return 0;
    rf__heap_entry_t e = {rank, left, right, w->syms[left].id, w->syms[right].id};
    return heap_push(w, &e);
}

static int merge_heap(const rf_tokenizer_t *tok, rf__work_t *w, size_t n)
{
    rf__sym_t *s = w->syms;
    for (size_t i = 0; i < n; i++) {
        s[i].prev = (int32_t)i - 1;
        s[i].next = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    w->heap_len = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        int rc = push_pair(tok, w, (int32_t)i, (int32_t)i + 1);
        if (rc < 0)
            return rc;
    }
    while (w->heap_len > 0) {
        rf__heap_entry_t e = heap_pop(w);
        rf__sym_t *l = &s[e.left];
        /* Skip entries made stale by an earlier merge: either side was
         * absorbed or has grown into another token since. A symbol's id
         * only ever grows, so equal ids mean the same state. */
        if (l->len == 0 || l->next != e.right || l->id != e.left_id || s[e.right].id != e.right_id)
            continue;
        rf__sym_t *r = &s[e.right];
        int32_t merged = -1; /* found: the pair was pushed because it merges */
        rf__pair_find(&tok->pairs, l->id, r->id, &merged);
        l->id = merged;
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0)
            s[r->next].prev = e.left;
        int rc = push_pair(tok, w, l->prev, e.left);
        if (rc == 0)
            rc = push_pair(tok, w, e.left, l->next);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int rf__bpe_merge(const rf_tokenizer_t *tok, rf__work_t *w, size_t n, int32_t *first)
{
    *first = n > 0 ? 0 : -1;
    if (n <= SMALL_PIECE)
        return merge_small(tok, w, n);
    return merge_heap(tok, w, n);
}

/* ------------------------------------------------------------------------
 * Loading
 * ------------------------------------------------------------------------ */

/* GPT-2's byte alphabet: printable Latin-1 bytes stand for themselves, the
 * other 68 are moved, in byte order, to U+0100 and up. */
static bool byte_is_printable(unsigned b)
{
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
}

static void build_byte_chars(rf_tokenizer_t *tok)
{
    unsigned shifted = 0;
    for (unsigned b = 0; b < 256; b++) {
        uint32_t cp = byte_is_printable(b) ? b : 256 + shifted++;
        char buf[4];
        size_t n = rf__utf8_encode(cp, buf);
        memcpy(tok->byte_chars[b], buf, n);
        tok->byte_char_len[b] = (uint8_t)n;
    }
}

/* Inverse of build_byte_chars for one code point, or -1. */
static int gpt2_char_byte(uint32_t cp)
{
    if (cp < 256)
        return byte_is_printable(cp) ? (int)cp : -1;
    if (cp >= 256 + 68)
        return -1;
    unsigned want = cp - 256, seen = 0;
    for (unsigned b = 0; b < 256; b++) {
        if (!byte_is_printable(b)) {
            if (seen == want)
                return (int)b;
            seen++;
        }
    }
    return -1;
}

static bool is_special_type(uint8_t type)
{
    return type == RF_TOKEN_CONTROL || type == RF_TOKEN_USER_DEFINED || type == RF_TOKEN_UNKNOWN;
}

static int read_id(const rf_gguf_t *g, const char *key, uint32_t n_vocab, bool strict,
                   int32_t *out, rf_err_t *err)
{
    int64_t v;
    int rc = rf_gguf_get_i64(g, key, &v);
    *out = -1;
    if (rc == 1)
        return 0;
    if (rc < 0)
        return rf_err_set(err, RF_EFORMAT, "%s is not an integer", key);
    if (v < 0 || v >= (int64_t)n_vocab) {
        if (!strict)
            return 0;
        return rf_err_set(err, RF_EFORMAT, "%s is %" PRId64 ", outside the vocabulary of %u tokens",
                          key, v, n_vocab);
    }
    *out = (int32_t)v;
    return 0;
}

static int read_bool(const rf_gguf_t *g, const char *key, bool *out, rf_err_t *err)
{
    int rc = rf_gguf_get_bool(g, key, out);
    if (rc < 0)
        return rf_err_set(err, RF_EFORMAT, "%s is not a bool", key);
    return 0;
}

typedef struct pre_name {
    const char *name;
    rf__pre_t pre;
} pre_name_t;

/* The names llama.cpp gives these pre-tokenizers; "llama3" and "llama-v3"
 * are older spellings of "llama-bpe". */
static const pre_name_t pre_names[] = {
    {"default", RF__PRE_DEFAULT}, {"gpt-2", RF__PRE_GPT2},   {"llama-bpe", RF__PRE_LLAMA3},
    {"llama3", RF__PRE_LLAMA3},   {"llama-v3", RF__PRE_LLAMA3}, {"qwen2", RF__PRE_QWEN2},
    {"smollm", RF__PRE_SMOLLM},
};

static int load_pieces(rf_tokenizer_t *tok, const rf_gguf_value_t *tokens, rf_err_t *err)
{
    uint32_t n = tok->n_vocab;
    uint64_t total = 0;
    for (uint32_t i = 0; i < n; i++) {
        rf_gguf_str_t s;
        rf_gguf_arr_str(tokens, i, &s);
        total += s.len + 1;
    }
    if (total > UINT32_MAX)
        return rf_err_set(err, RF_EFORMAT, "tokenizer.ggml.tokens holds %" PRIu64
                          " bytes of text, more than 4 GiB", total);
    tok->text = malloc((size_t)total);
    tok->text_off = malloc(n * sizeof *tok->text_off);
    tok->text_len = malloc(n * sizeof *tok->text_len);
    tok->hashes = malloc(n * sizeof *tok->hashes);
    tok->slot_cap = 16;
    while (tok->slot_cap < 2 * (size_t)n)
        tok->slot_cap *= 2;
    tok->slots = malloc(tok->slot_cap * sizeof *tok->slots);
    if (!tok->text || !tok->text_off || !tok->text_len || !tok->hashes || !tok->slots)
        return rf_err_set(err, -ENOMEM, "out of memory loading %u tokens", n);
    memset(tok->slots, 0xFF, tok->slot_cap * sizeof *tok->slots);
    uint32_t off = 0;
    for (uint32_t i = 0; i < n; i++) {
        rf_gguf_str_t s;
        rf_gguf_arr_str(tokens, i, &s);
        if (s.len > 0)
            memcpy(tok->text + off, s.data, s.len);
        tok->text[off + s.len] = 0;
        tok->text_off[i] = off;
        tok->text_len[i] = (uint32_t)s.len;
        off += (uint32_t)s.len + 1;
    }
    for (uint32_t i = 0; i < n; i++)
        piece_insert(tok, (int32_t)i);
    return 0;
}

static int load_types_scores(rf_tokenizer_t *tok, const rf_gguf_t *g, rf_err_t *err)
{
    uint32_t n = tok->n_vocab;
    tok->types = malloc(n);
    if (tok->types == NULL)
        return rf_err_set(err, -ENOMEM, "out of memory loading token types");
    memset(tok->types, RF_TOKEN_NORMAL, n);
    const rf_gguf_value_t *arr;
    int rc = rf_gguf_get_arr(g, "tokenizer.ggml.token_type", -1, &arr);
    if (rc < 0)
        return rf_err_set(err, RF_EFORMAT, "tokenizer.ggml.token_type is not an array");
    if (rc == 0) {
        if (arr->v.arr.n != n)
            return rf_err_set(err, RF_EFORMAT, "tokenizer.ggml.token_type has %" PRIu64
                              " entries for %u tokens", arr->v.arr.n, n);
        for (uint32_t i = 0; i < n; i++) {
            int64_t t;
            if (rf_gguf_arr_i64(arr, i, &t) < 0 || t < 0 || t > RF_TOKEN_BYTE)
                return rf_err_set(err, RF_EFORMAT, "tokenizer.ggml.token_type[%u] is not a "
                                  "token type (0..6)", i);
            tok->types[i] = (uint8_t)t;
        }
    }
    rc = rf_gguf_get_arr(g, "tokenizer.ggml.scores", -1, &arr);
    if (rc < 0)
        return rf_err_set(err, RF_EFORMAT, "tokenizer.ggml.scores is not an array");
    if (rc == 0) {
        if (arr->v.arr.n != n)
            return rf_err_set(err, RF_EFORMAT, "tokenizer.ggml.scores has %" PRIu64
                              " entries for %u tokens", arr->v.arr.n, n);
        tok->scores = malloc(n * sizeof *tok->scores);
        if (tok->scores == NULL)
            return rf_err_set(err, -ENOMEM, "out of memory loading scores");
        for (uint32_t i = 0; i < n; i++) {
            double v;
            if (rf_gguf_arr_f64(arr, i, &v) < 0)
                return rf_err_set(err, RF_EFORMAT, "tokenizer.ggml.scores is not a float array");
            tok->scores[i] = (float)v;
        }
    }
    return 0;
}

/* Split merge i ("left right") where both halves and their join are tokens.
 * The first space that works wins, so a token that itself holds a space can
 * still be named. */
static int parse_merge(const rf_tokenizer_t *tok, rf_gguf_str_t m, int32_t *left, int32_t *right,
                       int32_t *result, char *join, size_t join_cap)
{
    const char *s = m.data;
    size_t n = m.len;
    for (size_t sp = 1; sp + 1 < n; sp++) {
        if (s[sp] != ' ')
            continue;
        int32_t l = rf__tok_lookup(tok, s, sp);
        if (l < 0)
            continue;
        int32_t r = rf__tok_lookup(tok, s + sp + 1, n - sp - 1);
        if (r < 0)
            continue;
        if (n - 1 > join_cap)
            return -1;
        memcpy(join, s, sp);
        memcpy(join + sp, s + sp + 1, n - sp - 1);
        int32_t j = rf__tok_lookup(tok, join, n - 1);
        if (j < 0)
            continue;
        *left = l;
        *right = r;
        *result = j;
        return 0;
    }
    return -1;
}

static int load_merges(rf_tokenizer_t *tok, const rf_gguf_value_t *merges, rf_err_t *err)
{
    uint64_t n = merges->v.arr.n;
    if (n >= RF__RANK_NONE)
        return rf_err_set(err, RF_EFORMAT, "tokenizer.ggml.merges has %" PRIu64 " entries", n);
    if (pair_init(&tok->pairs, (size_t)n) < 0)
        return rf_err_set(err, -ENOMEM, "out of memory loading %" PRIu64 " merges", n);
    size_t join_cap = 0;
    for (uint32_t i = 0; i < tok->n_vocab; i++)
        if (tok->text_len[i] > join_cap)
            join_cap = tok->text_len[i];
    char *join = malloc(join_cap + 1);
    if (join == NULL)
        return rf_err_set(err, -ENOMEM, "out of memory loading merges");
    for (uint64_t i = 0; i < n; i++) {
        rf_gguf_str_t m;
        if (rf_gguf_arr_str(merges, i, &m) < 0) {
            free(join);
            return rf_err_set(err, RF_EFORMAT, "tokenizer.ggml.merges is not a string array");
        }
        int32_t l, r, j;
        if (parse_merge(tok, m, &l, &r, &j, join, join_cap) < 0) {
            free(join);
            return rf_err_set(err, RF_EFORMAT, "tokenizer.ggml.merges[%" PRIu64 "] '%.*s' does not "
                              "name two tokens whose join is a token", i,
                              (int)(m.len > 200 ? 200 : m.len), m.data);
        }
        pair_put(&tok->pairs, l, r, (uint32_t)i, j, true);
    }
    free(join);
    return 0;
}

static int cmp_score_desc(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x > y ? -1 : x < y ? 1 : 0;
}

/* SPM without merges: every split of a token into two tokens merges, with
 * the rank of the token's score (equal scores, equal ranks). */
static int derive_merges(rf_tokenizer_t *tok, rf_err_t *err)
{
    uint32_t n = tok->n_vocab;
    float *sorted = malloc(n * sizeof *sorted);
    if (sorted == NULL)
        return rf_err_set(err, -ENOMEM, "out of memory deriving merges");
    for (uint32_t i = 0; i < n; i++)
        sorted[i] = tok->scores ? tok->scores[i] : 0.0f;
    qsort(sorted, n, sizeof *sorted, cmp_score_desc);
    size_t n_distinct = 0;
    for (uint32_t i = 0; i < n; i++)
        if (n_distinct == 0 || sorted[n_distinct - 1] != sorted[i])
            sorted[n_distinct++] = sorted[i];
    /* Count the splits first so the pair table never fills. */
    size_t n_pairs = 0;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1 && pair_init(&tok->pairs, n_pairs) < 0) {
            free(sorted);
            return rf_err_set(err, -ENOMEM, "out of memory deriving merges");
        }
        for (uint32_t t = 0; t < n; t++) {
            const char *s = tok->text + tok->text_off[t];
            size_t len = tok->text_len[t];
            uint32_t rank = 0;
            if (pass == 1) {
                float score = tok->scores ? tok->scores[t] : 0.0f;
                size_t lo = 0, hi = n_distinct;
                while (lo + 1 < hi) { /* sorted descending: find score's index */
                    size_t mid = (lo + hi) / 2;
                    if (sorted[mid] >= score)
                        lo = mid;
                    else
                        hi = mid;
                }
                rank = (uint32_t)lo;
            }
            for (size_t k = 1; k < len; k++) {
                if (((unsigned char)s[k] & 0xC0) == 0x80)
                    continue; /* split only between characters */
                int32_t l = rf__tok_lookup(tok, s, k);
                if (l < 0)
                    continue;
                int32_t r = rf__tok_lookup(tok, s + k, len - k);
                if (r < 0)
                    continue;
                if (pass == 0)
                    n_pairs++;
                else
                    pair_put(&tok->pairs, l, r, rank, (int32_t)t, false);
            }
        }
    }
    free(sorted);
    return 0;
}

static int build_decode_table(rf_tokenizer_t *tok, rf_err_t *err)
{
    uint32_t n = tok->n_vocab;
    size_t total = tok->text_off[n - 1] + tok->text_len[n - 1] + 1;
    tok->dec = malloc(total);
    tok->dec_off = malloc(n * sizeof *tok->dec_off);
    tok->dec_len = malloc(n * sizeof *tok->dec_len);
    if (!tok->dec || !tok->dec_off || !tok->dec_len)
        return rf_err_set(err, -ENOMEM, "out of memory building the decode table");
    static const char lower_block[] = "\xE2\x96\x81"; /* U+2581 */
    uint32_t o = 0;
    for (uint32_t i = 0; i < n; i++) {
        const char *s = tok->text + tok->text_off[i];
        size_t len = tok->text_len[i];
        uint8_t type = tok->types[i];
        tok->dec_off[i] = o;
        if (is_special_type(type)) {
            /* Control and added tokens stand for their text as written. */
            memcpy(tok->dec + o, s, len);
            o += (uint32_t)len;
        } else if (tok->kind == RF_TOKENIZER_SPM) {
            unsigned byte;
            char tail;
            if (type == RF_TOKEN_BYTE && len == 6 && sscanf(s, "<0x%2x%c", &byte, &tail) == 2 &&
                tail == '>') {
                tok->dec[o++] = (char)byte;
            } else {
                for (size_t k = 0; k < len;) {
                    if (k + 3 <= len && memcmp(s + k, lower_block, 3) == 0) {
                        tok->dec[o++] = ' ';
                        k += 3;
                    } else {
                        tok->dec[o++] = s[k++];
                    }
                }
            }
        } else {
            size_t pos = 0;
            while (pos < len) {
                size_t at = pos;
                uint32_t cp = rf__utf8_next(s, len, &pos);
                int b = gpt2_char_byte(cp);
                if (b >= 0) {
                    tok->dec[o++] = (char)b;
                } else {
                    /* Not a byte-level character: keep it as written. */
                    memcpy(tok->dec + o, s + at, pos - at);
                    o += (uint32_t)(pos - at);
                }
            }
        }
        tok->dec_len[i] = o - tok->dec_off[i];
    }
    return 0;
}

static int build_trie(rf_tokenizer_t *tok, rf_err_t *err)
{
    size_t cap = 1;
    for (uint32_t i = 0; i < tok->n_vocab; i++)
        if (is_special_type(tok->types[i]))
            cap += tok->text_len[i];
    tok->trie = malloc(cap * sizeof *tok->trie);
    if (tok->trie == NULL)
        return rf_err_set(err, -ENOMEM, "out of memory indexing special tokens");
    tok->trie[0] = (rf__trie_node_t){-1, -1, -1, 0};
    tok->n_trie = 1;
    memset(tok->trie_first, 0, sizeof tok->trie_first);
    for (uint32_t i = 0; i < tok->n_vocab; i++) {
        size_t len = tok->text_len[i];
        if (!is_special_type(tok->types[i]) || len == 0)
            continue;
        const unsigned char *s = (const unsigned char *)tok->text + tok->text_off[i];
        tok->trie_first[s[0] >> 3] |= (uint8_t)(1u << (s[0] & 7));
        int32_t node = 0;
        for (size_t k = 0; k < len; k++) {
            int32_t child = tok->trie[node].first_child;
            while (child >= 0 && tok->trie[child].byte != s[k])
                child = tok->trie[child].next_sibling;
            if (child < 0) {
                child = (int32_t)tok->n_trie++;
                tok->trie[child] = (rf__trie_node_t){-1, tok->trie[node].first_child, -1, s[k]};
                tok->trie[node].first_child = child;
            }
            node = child;
        }
        if (tok->trie[node].id < 0)
            tok->trie[node].id = (int32_t)i;
    }
    return 0;
}

/* Longest special token at s[0..n), or -1; *len gets its length. */
static int32_t trie_match(const rf_tokenizer_t *tok, const char *s, size_t n, size_t *len)
{
    int32_t node = 0, best = -1;
    for (size_t k = 0; k < n; k++) {
        int32_t child = tok->trie[node].first_child;
        while (child >= 0 && tok->trie[child].byte != (unsigned char)s[k])
            child = tok->trie[child].next_sibling;
        if (child < 0)
            break;
        node = child;
        if (tok->trie[node].id >= 0) {
            best = tok->trie[node].id;
            *len = k + 1;
        }
    }
    return best;
}

static int32_t find_control(const rf_tokenizer_t *tok, const char *const *names, size_t n_names)
{
    for (size_t k = 0; k < n_names; k++) {
        int32_t id = rf__tok_lookup(tok, names[k], strlen(names[k]));
        if (id >= 0 && tok->types[id] != RF_TOKEN_NORMAL)
            return id;
    }
    return -1;
}

int rf_tokenizer_open(rf_tokenizer_t **out, const rf_gguf_t *g, rf_err_t *err)
{
    *out = NULL;
    rf_tokenizer_t *tok = calloc(1, sizeof *tok);
    if (tok == NULL)
        return rf_err_set(err, -ENOMEM, "out of memory opening a tokenizer");
    int rc;
    rf_gguf_str_t model;
    rc = rf_gguf_get_str(g, "tokenizer.ggml.model", &model);
    if (rc == 1) {
        rc = rf_err_set(err, RF_ENOTFOUND, "tokenizer.ggml.model is missing: the file carries no "
                        "vocabulary");
        goto fail;
    }
    if (rc < 0) {
        rc = rf_err_set(err, RF_EFORMAT, "tokenizer.ggml.model is not a string");
        goto fail;
    }
    if (rf_gguf_str_eq(model, "llama")) {
        tok->kind = RF_TOKENIZER_SPM;
    } else if (rf_gguf_str_eq(model, "gpt2")) {
        tok->kind = RF_TOKENIZER_BPE;
    } else {
        rc = rf_err_set(err, RF_EUNSUPPORTED, "tokenizer.ggml.model '%.*s' is not supported "
                        "(supported: llama, gpt2)", (int)(model.len > 64 ? 64 : model.len),
                        model.data);
        goto fail;
    }

    if (tok->kind == RF_TOKENIZER_BPE) {
        rf_gguf_str_t pre;
        rc = rf_gguf_get_str(g, "tokenizer.ggml.pre", &pre);
        if (rc == 1) {
            rc = rf_err_set(err, RF_ENOTFOUND, "tokenizer.ggml.pre is missing: a gpt2 vocabulary "
                            "needs its pre-tokenizer named (convert the model again with a "
                            "current llama.cpp)");
            goto fail;
        }
        if (rc < 0) {
            rc = rf_err_set(err, RF_EFORMAT, "tokenizer.ggml.pre is not a string");
            goto fail;
        }
        for (size_t i = 0; i < sizeof pre_names / sizeof pre_names[0]; i++)
            if (rf_gguf_str_eq(pre, pre_names[i].name))
                tok->pre = pre_names[i].pre;
        if (tok->pre == RF__PRE_NONE) {
            rc = rf_err_set(err, RF_EUNSUPPORTED, "tokenizer.ggml.pre '%.*s' is not supported "
                            "(supported: default, gpt-2, llama-bpe, qwen2, smollm)",
                            (int)(pre.len > 64 ? 64 : pre.len), pre.data);
            goto fail;
        }
        snprintf(tok->pre_name, sizeof tok->pre_name, "%.*s", (int)pre.len, pre.data);
    }

    const rf_gguf_value_t *tokens;
    rc = rf_gguf_get_arr(g, "tokenizer.ggml.tokens", RF_GGUF_STRING, &tokens);
    if (rc == 1) {
        rc = rf_err_set(err, RF_ENOTFOUND, "tokenizer.ggml.tokens is missing");
        goto fail;
    }
    if (rc < 0) {
        rc = rf_err_set(err, RF_EFORMAT, "tokenizer.ggml.tokens is not an array of strings");
        goto fail;
    }
    if (tokens->v.arr.n == 0 || tokens->v.arr.n > INT32_MAX / 2) {
        rc = rf_err_set(err, RF_EFORMAT, "tokenizer.ggml.tokens has %" PRIu64 " entries",
                        tokens->v.arr.n);
        goto fail;
    }
    tok->n_vocab = (uint32_t)tokens->v.arr.n;
    if ((rc = load_pieces(tok, tokens, err)) < 0)
        goto fail;
    if ((rc = load_types_scores(tok, g, err)) < 0)
        goto fail;

    const rf_gguf_value_t *merges;
    rc = rf_gguf_get_arr(g, "tokenizer.ggml.merges", RF_GGUF_STRING, &merges);
    if (rc < 0) {
        rc = rf_err_set(err, RF_EFORMAT, "tokenizer.ggml.merges is not an array of strings");
        goto fail;
    }
    if (rc == 1 && tok->kind == RF_TOKENIZER_BPE) {
        rc = rf_err_set(err, RF_ENOTFOUND, "tokenizer.ggml.merges is missing (a gpt2 vocabulary "
                        "needs its merges)");
        goto fail;
    }
    rc = rc == 0 ? load_merges(tok, merges, err) : derive_merges(tok, err);
    if (rc < 0)
        goto fail;

    struct {
        const char *key;
        int32_t *id;
        bool strict;
    } ids[] = {
        {"tokenizer.ggml.bos_token_id", &tok->bos, true},
        {"tokenizer.ggml.eos_token_id", &tok->eos, true},
        {"tokenizer.ggml.unknown_token_id", &tok->unk, true},
        /* Some converters write a padding id past the vocabulary; nothing
         * here uses padding, so such a value only means "none". */
        {"tokenizer.ggml.padding_token_id", &tok->pad, false},
        {"tokenizer.ggml.eot_token_id", &tok->eot, true},
        {"tokenizer.ggml.eom_token_id", &tok->eom, true},
    };
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        if ((rc = read_id(g, ids[i].key, tok->n_vocab, ids[i].strict, ids[i].id, err)) < 0)
            goto fail;
    if (tok->eot < 0) {
        /* Chat models that predate the key: llama.cpp's names, in order. */
        static const char *const eot_names[] = {"<|eot_id|>", "<|im_end|>", "<|end|>",
                                                "<end_of_turn>", "<|endoftext|>", "<EOT>"};
        tok->eot = find_control(tok, eot_names, sizeof eot_names / sizeof eot_names[0]);
    }

    /* llama.cpp's defaults: SPM adds BOS and a space prefix; byte-level BPE
     * adds BOS only for Llama 3. The file's keys override them. */
    tok->add_bos = tok->kind == RF_TOKENIZER_SPM || tok->pre == RF__PRE_LLAMA3;
    tok->add_eos = false;
    tok->add_space_prefix = tok->kind == RF_TOKENIZER_SPM;
    tok->ignore_merges = tok->pre == RF__PRE_LLAMA3;
    if ((rc = read_bool(g, "tokenizer.ggml.add_bos_token", &tok->add_bos, err)) < 0 ||
        (rc = read_bool(g, "tokenizer.ggml.add_eos_token", &tok->add_eos, err)) < 0 ||
        (rc = read_bool(g, "tokenizer.ggml.add_space_prefix", &tok->add_space_prefix, err)) < 0)
        goto fail;
    if (tok->kind == RF_TOKENIZER_BPE)
        tok->add_space_prefix = false;
    /* rocmforge's importer says whether tokenizer.json's BPE model ignores
     * merges; llama.cpp ties it to llama-bpe, which is the default above. */
    if ((rc = read_bool(g, "rocmforge.tokenizer.ignore_merges", &tok->ignore_merges, err)) < 0)
        goto fail;

    memset(tok->byte_ids, 0xFF, sizeof tok->byte_ids);
    memset(tok->ascii_ids, 0xFF, sizeof tok->ascii_ids);
    tok->space_id = -1;
    if (tok->kind == RF_TOKENIZER_BPE) {
        build_byte_chars(tok);
        for (unsigned b = 0; b < 256; b++) {
            tok->byte_ids[b] = rf__tok_lookup(tok, tok->byte_chars[b], tok->byte_char_len[b]);
            if (tok->byte_ids[b] < 0) {
                rc = rf_err_set(err, RF_EFORMAT, "byte-level vocabulary has no token for byte "
                                "0x%02X ('%.*s')", b, (int)tok->byte_char_len[b],
                                tok->byte_chars[b]);
                goto fail;
            }
        }
    } else {
        for (unsigned b = 0; b < 256; b++) {
            char name[8];
            snprintf(name, sizeof name, "<0x%02X>", b);
            tok->byte_ids[b] = rf__tok_lookup(tok, name, 6);
        }
        for (unsigned c = 0; c < 128; c++) {
            char ch = (char)c;
            tok->ascii_ids[c] = rf__tok_lookup(tok, &ch, 1);
        }
        tok->space_id = rf__tok_lookup(tok, "\xE2\x96\x81", 3);
        tok->spm_words = true;
        for (uint32_t i = 0; i < tok->n_vocab && tok->spm_words; i++) {
            const char *s = tok->text + tok->text_off[i];
            const char *end = s + tok->text_len[i];
            const char *p = s;
            while ((p = memmem(p, (size_t)(end - p), "\xE2\x96\x81", 3)) != NULL) {
                if (p > s && !(p - s >= 3 && memcmp(p - 3, "\xE2\x96\x81", 3) == 0)) {
                    tok->spm_words = false;
                    break;
                }
                p += 3;
            }
        }
    }

    if ((rc = build_decode_table(tok, err)) < 0 || (rc = build_trie(tok, err)) < 0)
        goto fail;
    *out = tok;
    return 0;
fail:
    rf_tokenizer_close(tok);
    return rc;
}

void rf_tokenizer_close(rf_tokenizer_t *tok)
{
    if (tok == NULL)
        return;
    free(tok->text);
    free(tok->text_off);
    free(tok->text_len);
    free(tok->types);
    free(tok->scores);
    free(tok->slots);
    free(tok->hashes);
    pair_free(&tok->pairs);
    free(tok->dec);
    free(tok->dec_off);
    free(tok->dec_len);
    free(tok->trie);
    free(tok);
}

/* ------------------------------------------------------------------------
 * Encoding
 * ------------------------------------------------------------------------ */

static int encode_text(const rf_tokenizer_t *tok, rf__work_t *w, const char *text, size_t len,
                       rf_tokens_t *out)
{
    /* The reference drops an empty stretch before normalising it, so an SPM
     * space prefix never stands alone. */
    if (len == 0)
        return 0;
    if (tok->kind == RF_TOKENIZER_SPM)
        return rf__spm_encode(tok, w, text, len, out);
    return rf__bpe_encode(tok, w, text, len, out);
}

int rf_tokenizer_encode(const rf_tokenizer_t *tok, const char *text, size_t len,
                        const rf_tokenize_options_t *opt, rf_tokens_t *out)
{
    static const rf_tokenize_options_t defaults = {false, false};
    if (opt == NULL)
        opt = &defaults;
    /* Byte offsets inside the tokenizer are 32-bit, and the SPM
     * normalisation can triple the text. */
    if (len >= RF_TOKENIZER_MAX_TEXT)
        return RF_ERANGE;
    size_t n0 = out->n;
    char *clean = NULL;
    rf__work_t w;
    memset(&w, 0, sizeof w);
    int rc = 0;
    if (len > 0 && rf__utf8_valid_prefix(text, len) < len) {
        size_t clean_len;
        rc = rf__utf8_sanitize(text, len, &clean, &clean_len);
        if (rc < 0)
            goto done;
        text = clean;
        len = clean_len;
    }
    if (opt->add_special && tok->add_bos && tok->bos >= 0 && (rc = rf_tokens_push(out, tok->bos)) < 0)
        goto done;
    size_t start = 0;
    if (opt->parse_special && tok->n_trie > 1) {
        for (size_t p = 0; p < len;) {
            unsigned char c = (unsigned char)text[p];
            size_t match_len = 0;
            int32_t id = -1;
            if (tok->trie_first[c >> 3] & (1u << (c & 7)))
                id = trie_match(tok, text + p, len - p, &match_len);
            if (id < 0) {
                p++;
                continue;
            }
            if ((rc = encode_text(tok, &w, text + start, p - start, out)) < 0 ||
                (rc = rf_tokens_push(out, id)) < 0)
                goto done;
            p += match_len;
            start = p;
        }
    }
    if ((rc = encode_text(tok, &w, text + start, len - start, out)) < 0)
        goto done;
    if (opt->add_special && tok->add_eos && tok->eos >= 0)
        rc = rf_tokens_push(out, tok->eos);
done:
    if (rc < 0)
        out->n = n0;
    rf__work_free(&w);
    free(clean);
    return rc;
}

/* ------------------------------------------------------------------------
 * Decoding
 * ------------------------------------------------------------------------ */

static bool skipped(const rf_tokenizer_t *tok, const rf_detokenize_options_t *opt, int32_t id)
{
    uint8_t t = tok->types[id];
    return opt != NULL && opt->skip_special && (t == RF_TOKEN_CONTROL || t == RF_TOKEN_UNKNOWN);
}

int rf_tokenizer_token_bytes(const rf_tokenizer_t *tok, int32_t id, rf_bytes_t *out)
{
    if (id < 0 || (uint32_t)id >= tok->n_vocab)
        return RF_ERANGE;
    return rf_bytes_append(out, tok->dec + tok->dec_off[id], tok->dec_len[id]);
}

int rf_tokenizer_decode(const rf_tokenizer_t *tok, const int32_t *ids, size_t n,
                        const rf_detokenize_options_t *opt, rf_bytes_t *out)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || (uint32_t)ids[i] >= tok->n_vocab)
            return RF_ERANGE;
    size_t len0 = out->len;
    bool first = true;
    for (size_t i = 0; i < n; i++) {
        if (skipped(tok, opt, ids[i]))
            continue;
        const char *s = tok->dec + tok->dec_off[ids[i]];
        size_t len = tok->dec_len[ids[i]];
        if (len == 0)
            continue;
        /* The reference strips the space from the start of the decoded
         * text, so it is the first piece with any bytes that loses it. */
        if (first && opt != NULL && opt->strip_leading_space && s[0] == ' ') {
            s++;
            len--;
        }
        first = false;
        if (rf_bytes_append(out, s, len) < 0) {
            out->len = len0;
            if (out->data)
                out->data[len0] = 0;
            return -ENOMEM;
        }
    }
    return 0;
}

/* Append s[0..n) with each invalid subsequence as U+FFFD. */
static int append_sanitized(rf_bytes_t *out, const char *s, size_t n)
{
    while (n > 0) {
        size_t v = rf__utf8_valid_prefix(s, n);
        if (rf_bytes_append(out, s, v) < 0)
            return -ENOMEM;
        s += v;
        n -= v;
        if (n > 0) {
            size_t pos = 0;
            rf__utf8_next(s, n, &pos);
            if (rf_bytes_append(out, "\xEF\xBF\xBD", 3) < 0)
                return -ENOMEM;
            s += pos;
            n -= pos;
        }
    }
    return 0;
}

void rf_detok_init(rf_detok_t *d, const rf_tokenizer_t *tok, const rf_detokenize_options_t *opt)
{
    memset(d, 0, sizeof *d);
    d->tok = tok;
    if (opt != NULL)
        d->opt = *opt;
    d->first = true;
}

int rf_detok_push(rf_detok_t *d, int32_t id, rf_bytes_t *out)
{
    const rf_tokenizer_t *tok = d->tok;
    if (id < 0 || (uint32_t)id >= tok->n_vocab)
        return RF_ERANGE;
    if (skipped(tok, &d->opt, id))
        return 0;
    const char *s = tok->dec + tok->dec_off[id];
    size_t len = tok->dec_len[id];
    if (len == 0)
        return 0;
    if (d->first && d->opt.strip_leading_space && s[0] == ' ') {
        s++;
        len--;
    }
    d->first = false;
    size_t len0 = out->len;
    int rc = 0;
    /* Complete a held sequence first, byte by byte: it needs at most three
     * more, and a byte that cannot continue it ends it as U+FFFD. */
    while (d->n_pending > 0 && len > 0) {
        d->pending[d->n_pending++] = (unsigned char)*s++;
        len--;
        size_t tail = rf__utf8_incomplete_tail((const char *)d->pending, d->n_pending);
        if (tail == d->n_pending)
            continue; /* still incomplete */
        /* Complete or broken: emit everything but a new incomplete tail. */
        if ((rc = append_sanitized(out, (const char *)d->pending, d->n_pending - tail)) < 0)
            goto fail;
        memmove(d->pending, d->pending + d->n_pending - tail, tail);
        d->n_pending = tail;
    }
    if (len > 0) {
        size_t tail = rf__utf8_incomplete_tail(s, len);
        if ((rc = append_sanitized(out, s, len - tail)) < 0)
            goto fail;
        memcpy(d->pending, s + len - tail, tail);
        d->n_pending = tail;
    }
    return 0;
fail:
    out->len = len0;
    if (out->data)
        out->data[len0] = 0;
    return rc;
}

int rf_detok_flush(rf_detok_t *d, rf_bytes_t *out)
{
    if (d->n_pending == 0)
        return 0;
    int rc = append_sanitized(out, (const char *)d->pending, d->n_pending);
    if (rc == 0)
        d->n_pending = 0;
    return rc;
}

/* ------------------------------------------------------------------------
 * Vocabulary facts
 * ------------------------------------------------------------------------ */

rf_tokenizer_kind_t rf_tokenizer_kind(const rf_tokenizer_t *tok) { return tok->kind; }
const char *rf_tokenizer_pre(const rf_tokenizer_t *tok) { return tok->pre_name; }
uint32_t rf_tokenizer_n_vocab(const rf_tokenizer_t *tok) { return tok->n_vocab; }
int32_t rf_tokenizer_bos(const rf_tokenizer_t *tok) { return tok->bos; }
int32_t rf_tokenizer_eos(const rf_tokenizer_t *tok) { return tok->eos; }
int32_t rf_tokenizer_eot(const rf_tokenizer_t *tok) { return tok->eot; }

const char *rf_tokenizer_piece(const rf_tokenizer_t *tok, int32_t id)
{
    if (id < 0 || (uint32_t)id >= tok->n_vocab)
        return NULL;
    return tok->text + tok->text_off[id];
}

rf_token_type_t rf_tokenizer_token_type(const rf_tokenizer_t *tok, int32_t id)
{
    if (id < 0 || (uint32_t)id >= tok->n_vocab)
        return RF_TOKEN_UNDEFINED;
    return (rf_token_type_t)tok->types[id];
}

int32_t rf_tokenizer_find(const rf_tokenizer_t *tok, const char *piece)
{
    return rf__tok_lookup(tok, piece, strlen(piece));
}

bool rf_tokenizer_is_eog(const rf_tokenizer_t *tok, int32_t id)
{
    if (id < 0 || (uint32_t)id >= tok->n_vocab)
        return false;
    if (id == tok->eos || id == tok->eot || id == tok->eom)
        return true;
    if (tok->types[id] != RF_TOKEN_CONTROL && tok->types[id] != RF_TOKEN_USER_DEFINED)
        return false;
    /* Tokens that end a turn in the common chat formats, as llama.cpp
     * gathers them when the file names only one. */
    static const char *const names[] = {"<|eot_id|>", "<|eom_id|>", "<|im_end|>", "<|endoftext|>",
                                        "<|end_of_text|>", "<end_of_turn>", "<|end|>", "<EOT>"};
    const char *s = tok->text + tok->text_off[id];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(s, names[i]) == 0)
            return true;
    return false;
}
