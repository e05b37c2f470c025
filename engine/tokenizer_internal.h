/* tokenizer_internal.h - what tokenizer.c, tokenizer_spm.c and tokenizer_bpe.c share
 *
 * tokenizer.c loads the vocabulary, splits special tokens out of the text and
 * decodes; the two model files turn one stretch of ordinary text into ids.
 * Both models end in the same merge loop (rf__bpe_merge): symbols are token
 * ids, and a pair of adjacent ids merges when the pair table knows it, lowest
 * rank first and, among equal ranks, leftmost first.
 */
#ifndef RF_TOKENIZER_INTERNAL_H
#define RF_TOKENIZER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer.h"

/* Pre-tokenizers of the byte-level BPE model (tokenizer.ggml.pre). */
typedef enum rf__pre {
    RF__PRE_NONE = 0,  /* SPM */
    RF__PRE_DEFAULT,   /* llama.cpp's fallback: punctuation runs, GPT-2, digit runs, digit triples */
    RF__PRE_GPT2,      /* GPT-2's regular expression */
    RF__PRE_LLAMA3,    /* Llama 3: contractions any case, digits in threes */
    RF__PRE_QWEN2,     /* Llama 3's expression with single digits, NFC first */
    RF__PRE_SMOLLM,    /* single digits, then GPT-2 */
} rf__pre_t;

/* (left id, right id) -> (rank, merged id), open addressing. */
typedef struct rf__pair_table {
    uint64_t *keys;   /* [cap] (left << 32 | right), RF__PAIR_EMPTY if free */
    uint32_t *ranks;  /* [cap] lower merges first */
    int32_t *results; /* [cap] id of left+right */
    size_t cap;       /* power of two */
    size_t count;
} rf__pair_table_t;

#define RF__PAIR_EMPTY UINT64_MAX
#define RF__RANK_NONE UINT32_MAX

/* A trie over the bytes of the tokens that parse_special recognises. */
typedef struct rf__trie_node {
    int32_t first_child;  /* node index or -1 */
    int32_t next_sibling; /* node index or -1 */
    int32_t id;           /* token ending here, or -1 */
    uint8_t byte;
} rf__trie_node_t;

struct rf_tokenizer {
    rf_tokenizer_kind_t kind;
    rf__pre_t pre;
    char pre_name[64];       /* as the file spells it; "" for SPM */

    uint32_t n_vocab;
    char *text;              /* every piece, NUL-terminated, back to back */
    uint32_t *text_off;      /* [n_vocab] offset of piece i in text */
    uint32_t *text_len;      /* [n_vocab] bytes of piece i */
    uint8_t *types;          /* [n_vocab] rf_token_type_t */
    float *scores;           /* [n_vocab] or NULL */

    /* piece -> id */
    int32_t *slots;          /* [slot_cap] id or -1 */
    uint32_t *hashes;        /* [n_vocab] low bits of each piece's hash */
    size_t slot_cap;         /* power of two */

    rf__pair_table_t pairs;

    /* What each token decodes to (byte-level or SPM mapping undone). */
    char *dec;               /* back to back */
    uint32_t *dec_off;       /* [n_vocab] */
    uint32_t *dec_len;       /* [n_vocab] */

    /* Special tokens for parse_special. */
    rf__trie_node_t *trie;   /* [n_trie]; node 0 is the root */
    size_t n_trie;
    uint8_t trie_first[32];  /* bitmap of bytes a special token can start with */

    int32_t byte_ids[256];   /* BPE: id of each byte's GPT-2 character; SPM: <0xNN>, -1 if absent */
    int32_t ascii_ids[128];  /* SPM: id of each ASCII character as a piece, -1 if absent */
    int32_t space_id;        /* SPM: id of U+2581 alone, -1 if absent */
    /* SPM: no token holds U+2581 after another character, so no merge can
     * cross the start of a word and words merge one at a time. */
    bool spm_words;
    /* BPE: the GPT-2 character of each byte, as UTF-8 (1 or 2 bytes). */
    char byte_chars[256][2];
    uint8_t byte_char_len[256];

    int32_t bos, eos, unk, pad, eot, eom;
    bool add_bos, add_eos, add_space_prefix, ignore_merges;
};

/* Scratch memory of one encode call, reused across its pieces so that no
 * piece allocates. */
typedef struct rf__sym {
    int32_t id;       /* token id, or -1 for a character the vocabulary lacks */
    uint32_t start;   /* byte offset of the symbol in the piece */
    uint32_t len;     /* bytes */
    int32_t prev, next;
} rf__sym_t;

typedef struct rf__heap_entry {
    uint32_t rank;
    int32_t left, right;   /* symbol indices */
    int32_t left_id, right_id;
} rf__heap_entry_t;

typedef struct rf__work {
    rf__sym_t *syms;
    size_t syms_cap;
    rf__heap_entry_t *heap;
    size_t heap_len, heap_cap;
    char *buf;             /* normalised or byte-level text */
    size_t buf_cap;
    /* Code points of the section the pre-tokenizer splits. */
    uint32_t *cps;
    uint32_t *offs;        /* [n + 1] byte offset of code point i */
    uint8_t *flags;        /* RF__UC_* */
    size_t cps_cap;
} rf__work_t;

void rf__work_free(rf__work_t *w);
int rf__work_reserve_syms(rf__work_t *w, size_t n);
int rf__work_reserve_buf(rf__work_t *w, size_t n);

/* Id of the piece s[0..n), or -1. */
int32_t rf__tok_lookup(const rf_tokenizer_t *tok, const char *s, size_t n);

/* Look up the pair (left, right): its rank (RF__RANK_NONE if it does not
 * merge) and the merged id. */
uint32_t rf__pair_find(const rf__pair_table_t *t, int32_t left, int32_t right, int32_t *merged);

/* Merge w->syms[0..n) (id, start and len filled in) as far as the pair
 * table allows. *first gets the index of the first symbol; follow .next to
 * walk the result. Returns 0 or -ENOMEM. */
int rf__bpe_merge(const rf_tokenizer_t *tok, rf__work_t *w, size_t n, int32_t *first);

/* Encode one stretch of ordinary text (no special tokens in it) with the
 * model's own rules. Return 0 or -ENOMEM. */
int rf__spm_encode(const rf_tokenizer_t *tok, rf__work_t *w, const char *text, size_t len,
                   rf_tokens_t *out);
int rf__bpe_encode(const rf_tokenizer_t *tok, rf__work_t *w, const char *text, size_t len,
                   rf_tokens_t *out);

/* Split text[0..len) (valid UTF-8) as pre-tokenizer pre does and call
 * piece(ctx, start, end) with byte offsets for each piece, in order.
 * Stops at and returns the first non-zero value piece returns. Exposed for
 * the tests; returns 0, -ENOMEM or piece's value. */
typedef int (*rf__piece_fn)(void *ctx, size_t start, size_t end);
int rf__pretokenize(rf__pre_t pre, rf__work_t *w, const char *text, size_t len,
                    rf__piece_fn piece, void *ctx);

#endif /* RF_TOKENIZER_INTERNAL_H */
