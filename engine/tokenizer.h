/* tokenizer.h - text to token ids and back, from a GGUF vocabulary
 *
 * Two model families, chosen by tokenizer.ggml.model:
 *   "llama" - SentencePiece-style BPE: the text is normalised (spaces become
 *             U+2581, a space prefix is added when add_space_prefix says so),
 *             pieces are merged by score, characters missing from the
 *             vocabulary fall back to <0xNN> byte tokens.
 *   "gpt2"  - byte-level BPE: a pre-tokenizer named by tokenizer.ggml.pre
 *             splits the text with its regular expression, each piece's
 *             bytes map to GPT-2's byte alphabet, and merges apply by rank.
 * Supported pre-tokenizers: "gpt-2", "llama-bpe" (Llama 3.x; also spelt
 * "llama3" and "llama-v3"), "qwen2" (Qwen 2, 2.5, 3; the text is
 * NFC-normalised first, as the Hugging Face tokenizer does), "smollm", and
 * "default" (llama.cpp's fallback chain of four expressions, not GPT-2's).
 * Anything else is an error at open, never a silent default.
 *
 * Input text that is not valid UTF-8 is read as the WHATWG decoder reads it:
 * each maximal invalid subsequence becomes U+FFFD. A NUL byte is an ordinary
 * character (U+0000). Both are documented in docs/tokenizers.md.
 *
 * A tokenizer is immutable after open and may be shared between threads.
 */
#ifndef RF_TOKENIZER_H
#define RF_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "gguf.h"

typedef struct rf_tokenizer rf_tokenizer_t;

typedef enum rf_tokenizer_kind {
    RF_TOKENIZER_SPM = 1, /* "llama" */
    RF_TOKENIZER_BPE = 2, /* "gpt2" */
} rf_tokenizer_kind_t;

/* tokenizer.ggml.token_type values (llama.cpp's) */
typedef enum rf_token_type {
    RF_TOKEN_UNDEFINED = 0,
    RF_TOKEN_NORMAL = 1,
    RF_TOKEN_UNKNOWN = 2,
    RF_TOKEN_CONTROL = 3,
    RF_TOKEN_USER_DEFINED = 4,
    RF_TOKEN_UNUSED = 5,
    RF_TOKEN_BYTE = 6,
} rf_token_type_t;

/* A growable array of token ids; zero-initialise, free with rf_tokens_free. */
typedef struct rf_tokens {
    int32_t *ids;
    size_t n, cap;
} rf_tokens_t;

void rf_tokens_free(rf_tokens_t *t);
int rf_tokens_push(rf_tokens_t *t, int32_t id); /* 0 or -ENOMEM */

/* A growable byte buffer (decoded text); zero-initialise, free with rf_bytes_free. */
typedef struct rf_bytes {
    char *data; /* NUL-terminated for convenience; may contain NULs */
    size_t len, cap;
} rf_bytes_t;

void rf_bytes_free(rf_bytes_t *b);
int rf_bytes_append(rf_bytes_t *b, const void *data, size_t len); /* 0 or -ENOMEM */

/* Build a tokenizer from a model's (or vocab-only) GGUF. Everything needed is
 * copied: g may be closed afterwards. Returns 0, RF_ENOTFOUND (a required key
 * is missing), RF_EUNSUPPORTED (unknown tokenizer.ggml.model or .pre: the
 * message names the value), RF_EFORMAT (inconsistent arrays, a merge naming
 * an unknown token, a special id out of range), -ENOMEM. */
int rf_tokenizer_open(rf_tokenizer_t **out, const rf_gguf_t *g, rf_err_t *err);
void rf_tokenizer_close(rf_tokenizer_t *tok); /* NULL is fine */

typedef struct rf_tokenize_options {
    bool add_special;   /* add BOS/EOS as the vocabulary's add_bos/add_eos say */
    bool parse_special; /* recognise control and user-defined tokens written in
                           the text (chat markup); otherwise they are literal text */
} rf_tokenize_options_t;

/* Texts of this many bytes or more are refused (RF_ERANGE). */
#define RF_TOKENIZER_MAX_TEXT ((size_t)1 << 30)

/* Append the ids of text[0..len) to out. opt NULL means both false. Returns
 * 0, -ENOMEM or RF_ERANGE (len >= RF_TOKENIZER_MAX_TEXT); on failure out
 * is as it was. */
int rf_tokenizer_encode(const rf_tokenizer_t *tok, const char *text, size_t len,
                        const rf_tokenize_options_t *opt, rf_tokens_t *out);

typedef struct rf_detokenize_options {
    bool skip_special;  /* leave control tokens (BOS, EOS, chat markup) and the
                           unknown token out, as the reference's
                           skip_special_tokens does */
    bool strip_leading_space; /* SPM: drop the space prefix of the first piece
                                 that has any bytes */
} rf_detokenize_options_t;

/* Append the bytes of ids to out. An id out of range is RF_ERANGE (nothing
 * appended). The bytes may end inside a UTF-8 sequence when the ids do. */
int rf_tokenizer_decode(const rf_tokenizer_t *tok, const int32_t *ids, size_t n,
                        const rf_detokenize_options_t *opt, rf_bytes_t *out);

/* Bytes one token stands for (after byte-level or SPM mapping). */
int rf_tokenizer_token_bytes(const rf_tokenizer_t *tok, int32_t id, rf_bytes_t *out);

/* Vocabulary facts. Ids are -1 where the vocabulary has none. */
rf_tokenizer_kind_t rf_tokenizer_kind(const rf_tokenizer_t *tok);
const char *rf_tokenizer_pre(const rf_tokenizer_t *tok); /* "" for SPM */
uint32_t rf_tokenizer_n_vocab(const rf_tokenizer_t *tok);
const char *rf_tokenizer_piece(const rf_tokenizer_t *tok, int32_t id); /* NULL if out of range */
rf_token_type_t rf_tokenizer_token_type(const rf_tokenizer_t *tok, int32_t id);
int32_t rf_tokenizer_bos(const rf_tokenizer_t *tok);
int32_t rf_tokenizer_eos(const rf_tokenizer_t *tok);
int32_t rf_tokenizer_eot(const rf_tokenizer_t *tok); /* end of turn (<|eot_id|>, <|im_end|>) */
int32_t rf_tokenizer_find(const rf_tokenizer_t *tok, const char *piece); /* -1 if absent */
bool rf_tokenizer_is_eog(const rf_tokenizer_t *tok, int32_t id); /* ends generation */

/* Incremental decoding for streaming and stop strings: feed ids one at a
 * time, get back only complete UTF-8 text; a partial sequence is held until
 * the bytes that complete it arrive (or rf_detok_flush emits it as U+FFFD). */
typedef struct rf_detok {
    const rf_tokenizer_t *tok;
    rf_detokenize_options_t opt;
    unsigned char pending[8]; /* bytes of an incomplete UTF-8 sequence */
    size_t n_pending;
    bool first;               /* no piece emitted yet */
} rf_detok_t;

void rf_detok_init(rf_detok_t *d, const rf_tokenizer_t *tok, const rf_detokenize_options_t *opt);
/* Append the complete text that id finishes to out. */
int rf_detok_push(rf_detok_t *d, int32_t id, rf_bytes_t *out);
/* Emit what is still pending (as U+FFFD per invalid byte run). */
int rf_detok_flush(rf_detok_t *d, rf_bytes_t *out);

#endif /* RF_TOKENIZER_H */
