/* tokenizer_spm.c - SentencePiece-style BPE ("llama" vocabularies)
 *
 * One stretch of text between special tokens is normalised as Llama 2's
 * Hugging Face tokenizer does it (normalizer Prepend "▁" then Replace " " by
 * "▁", no pre-tokenizer): U+2581 goes in front when add_space_prefix is set,
 * and every U+0020 becomes U+2581. Only the ASCII space is replaced; other
 * whitespace stays as it is. The whole stretch is then one word for the merge
 * loop, which starts from one symbol per character. A character that is not
 * in the vocabulary, and so never merges, is written as its UTF-8 bytes with
 * the <0xNN> byte tokens, or as the unknown token when one of those is
 * missing (byte fallback).
 */
#include <errno.h>
#include <string.h>

#include "tokenizer_internal.h"
#include "unicode.h"

static const char lower_block[3] = {(char)0xE2, (char)0x96, (char)0x81}; /* U+2581 */

/* Write text[0..len) normalised into w->buf; returns its length in *n. */
static int normalise(const rf_tokenizer_t *tok, rf__work_t *w, const char *text, size_t len,
                     size_t *n)
{
    size_t spaces = 0;
    for (size_t i = 0; i < len; i++)
        spaces += text[i] == ' ';
    if (len > (SIZE_MAX - 3) / 3)
        return -ENOMEM;
    size_t need = len + 2 * spaces + (tok->add_space_prefix ? 3 : 0);
    int rc = rf__work_reserve_buf(w, need);
    if (rc < 0)
        return rc;
    char *o = w->buf;
    if (tok->add_space_prefix) {
        memcpy(o, lower_block, 3);
        o += 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(o, lower_block, 3);
            o += 3;
        } else {
            *o++ = text[i];
        }
    }
    *n = (size_t)(o - w->buf);
    return 0;
}

/* Merge the characters of s[0..n) and append the resulting ids. */
static int encode_word(const rf_tokenizer_t *tok, rf__work_t *w, const char *s, size_t n_bytes,
                       rf_tokens_t *out)
{
    int rc;
    /* At most one symbol per byte. */
    if ((rc = rf__work_reserve_syms(w, n_bytes)) < 0)
        return rc;
    size_t n = 0;
    for (size_t pos = 0; pos < n_bytes;) {
        size_t start = pos;
        unsigned char c = (unsigned char)s[pos];
        int32_t id;
        if (c < 0x80) {
            pos++;
            id = tok->ascii_ids[c];
        } else {
            rf__utf8_next(s, n_bytes, &pos);
            if (pos - start == 3 && memcmp(s + start, lower_block, 3) == 0)
                id = tok->space_id;
            else
                id = rf__tok_lookup(tok, s + start, pos - start);
        }
        w->syms[n].id = id;
        w->syms[n].start = (uint32_t)start;
        w->syms[n].len = (uint32_t)(pos - start);
        n++;
    }
    int32_t first;
    if ((rc = rf__bpe_merge(tok, w, n, &first)) < 0)
        return rc;
    for (int32_t i = first; i >= 0; i = w->syms[i].next) {
        const rf__sym_t *sym = &w->syms[i];
        if (sym->id >= 0) {
            if ((rc = rf_tokens_push(out, sym->id)) < 0)
                return rc;
            continue;
        }
        const unsigned char *b = (const unsigned char *)s + sym->start;
        bool all_bytes = true;
        for (uint32_t k = 0; k < sym->len; k++)
            all_bytes = all_bytes && tok->byte_ids[b[k]] >= 0;
        if (all_bytes) {
            for (uint32_t k = 0; k < sym->len; k++)
                if ((rc = rf_tokens_push(out, tok->byte_ids[b[k]])) < 0)
                    return rc;
        } else if (tok->unk >= 0) {
            if ((rc = rf_tokens_push(out, tok->unk)) < 0)
                return rc;
        }
    }
    return 0;
}

int rf__spm_encode(const rf_tokenizer_t *tok, rf__work_t *w, const char *text, size_t len,
                   rf_tokens_t *out)
{
    size_t n_bytes;
    int rc = normalise(tok, w, text, len, &n_bytes);
    if (rc < 0)
        return rc;
    const char *s = w->buf;
    /* With ignore_merges the reference looks the whole word up first, and
     * with no pre-tokenizer the word is the whole stretch. */
    if (tok->ignore_merges) {
        int32_t id = rf__tok_lookup(tok, s, n_bytes);
        if (id >= 0)
            return rf_tokens_push(out, id);
    }
    if (!tok->spm_words)
        return encode_word(tok, w, s, n_bytes, out);
    /* A word starts at each U+2581 that follows another character; no
     * token spans such a start (spm_words), so each word merges alone,
     * which gives the same result as merging the whole stretch at once
     * and keeps the merge loop on short inputs. */
    size_t word = 0;
    for (size_t pos = 3; pos + 3 <= n_bytes; pos++) {
        if (memcmp(s + pos, lower_block, 3) != 0 || memcmp(s + pos - 3, lower_block, 3) == 0)
            continue;
        if ((rc = encode_word(tok, w, s + word, pos - word, out)) < 0)
            return rc;
        word = pos;
        pos += 2;
    }
    return encode_word(tok, w, s + word, n_bytes - word, out);
}
