/* chat.c - chat templates: messages rendered in a model family's format
 *
 * rocmforge does not run Jinja. Each renderer below transcribes one published
 * template, statement by statement, and must give byte for byte what that
 * template gives under Python's Jinja2 (what transformers runs, so what the
 * models were trained with) for conversations of system, user and assistant
 * turns. tests/conformance checks every family against a reference engine on
 * a set of conversations; the templates are named there (README.md).
 *
 * Python semantics that matter here, and that a JS engine would get wrong:
 *   - str.strip() and the trim filter remove Python's whitespace (str.isspace:
 *     ASCII \t\n\v\f\r, U+001C..U+001F, space, U+0085, U+00A0, U+1680,
 *     U+2000..U+200A, U+2028, U+2029, U+202F, U+205F, U+3000), not U+FEFF;
 *   - strip('\n') removes newlines only;
 *   - "system_message != false" holds for every string, "" included.
 *
 * Messages are validated before anything is written; a failing render leaves
 * out as it was.
 */
#include "chat.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

/* ---- types and tables ---- */

typedef enum role {
    ROLE_SYSTEM,
    ROLE_USER,
    ROLE_ASSISTANT,
} role_t;

/* A piece of borrowed text; not NUL-terminated. */
typedef struct span {
    const char *p;
    size_t n;
} span_t;

/* One render in progress. Appends stop at the first failure (rc). */
typedef struct render {
    rf_chat_family_t family;
    const rf_chat_message_t *msgs;
    size_t n;
    bool gen;        /* add_generation_prompt */
    const char *bos; /* never NULL */
    const char *eos; /* never NULL */
    rf_bytes_t *out;
    int rc;          /* 0 or the first rf_bytes_append failure */
    rf_err_t *err;
} render_t;

static const char *const family_names[] = {
    [RF_CHAT_UNKNOWN] = "unknown",
    [RF_CHAT_LLAMA3] = "llama3",
    [RF_CHAT_LLAMA2] = "llama2",
    [RF_CHAT_CHATML] = "chatml",
    [RF_CHAT_QWEN3] = "qwen3",
    [RF_CHAT_MISTRAL] = "mistral",
    [RF_CHAT_GEMMA] = "gemma",
    [RF_CHAT_PHI3] = "phi3",
};

#define N_FAMILIES (sizeof family_names / sizeof family_names[0])

/* Python whitespace beyond ASCII, as UTF-8. Each starts with a lead byte, so
 * a match at either end of valid UTF-8 is a whole character. */
static const char *const wide_spaces[] = {
    "\xc2\x85",     "\xc2\xa0",     "\xe1\x9a\x80", "\xe2\x80\x80", "\xe2\x80\x81",
    "\xe2\x80\x82", "\xe2\x80\x83", "\xe2\x80\x84", "\xe2\x80\x85", "\xe2\x80\x86",
    "\xe2\x80\x87", "\xe2\x80\x88", "\xe2\x80\x89", "\xe2\x80\x8a", "\xe2\x80\xa8",
    "\xe2\x80\xa9", "\xe2\x80\xaf", "\xe2\x81\x9f", "\xe3\x80\x80",
};

/* ---- text helpers ---- */

static span_t span_of(const char *s)
{
    return (span_t){ s, strlen(s) };
}

static span_t span_from(span_t s, size_t at)
{
    return (span_t){ s.p + at, s.n - at };
}

static bool is_ascii_space(unsigned char c)
{
    return (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f) || c == ' ';
}

/* Bytes of the whitespace character that s starts with (0 if none). */
static size_t space_at_start(span_t s)
{
    if (s.n == 0)
        return 0;
    if (is_ascii_space((unsigned char)s.p[0]))
        return 1;
    for (size_t i = 0; i < sizeof wide_spaces / sizeof wide_spaces[0]; i++) {
        size_t len = strlen(wide_spaces[i]);
        if (s.n >= len && memcmp(s.p, wide_spaces[i], len) == 0)
            return len;
    }
    return 0;
}

/* Bytes of the whitespace character that s ends with (0 if none). */
static size_t space_at_end(span_t s)
{
    if (s.n == 0)
        return 0;
    if (is_ascii_space((unsigned char)s.p[s.n - 1]))
        return 1;
    for (size_t i = 0; i < sizeof wide_spaces / sizeof wide_spaces[0]; i++) {
        size_t len = strlen(wide_spaces[i]);
        if (s.n >= len && memcmp(s.p + s.n - len, wide_spaces[i], len) == 0)
            return len;
    }
    return 0;
}

/* Python's str.strip() / lstrip() / rstrip() without arguments. */
static span_t strip_space(span_t s, bool left, bool right)
{
    size_t k;
    if (left)
        while ((k = space_at_start(s)) > 0)
            s = span_from(s, k);
    if (right)
        while ((k = space_at_end(s)) > 0)
            s.n -= k;
    return s;
}

/* Python's strip('\n') / lstrip('\n') / rstrip('\n'). */
static span_t strip_newlines(span_t s, bool left, bool right)
{
    if (left)
        while (s.n > 0 && s.p[0] == '\n')
            s = span_from(s, 1);
    if (right)
        while (s.n > 0 && s.p[s.n - 1] == '\n')
            s.n--;
    return s;
}

/* Offset of the first (or last) occurrence of needle in s; -1 if none. */
static ptrdiff_t find_first(span_t s, const char *needle)
{
    const char *hit = memmem(s.p, s.n, needle, strlen(needle));
    return hit ? hit - s.p : -1;
}

static ptrdiff_t find_last(span_t s, const char *needle)
{
    size_t len = strlen(needle);
    for (size_t i = s.n >= len ? s.n - len + 1 : 0; i-- > 0;)
        if (memcmp(s.p + i, needle, len) == 0)
            return (ptrdiff_t)i;
    return -1;
}

static bool starts_with(span_t s, const char *prefix)
{
    size_t len = strlen(prefix);
    return s.n >= len && memcmp(s.p, prefix, len) == 0;
}

static bool ends_with(span_t s, const char *suffix)
{
    size_t len = strlen(suffix);
    return s.n >= len && memcmp(s.p + s.n - len, suffix, len) == 0;
}

/* ---- output ---- */

static void put_span(render_t *r, span_t s)
{
    if (r->rc == 0 && s.n > 0)
        r->rc = rf_bytes_append(r->out, s.p, s.n);
}

static void put(render_t *r, const char *s)
{
    put_span(r, span_of(s));
}

/* ---- messages ---- */

static role_t role_of(const render_t *r, size_t i)
{
    const char *role = r->msgs[i].role;
    if (strcmp(role, "system") == 0)
        return ROLE_SYSTEM;
    return strcmp(role, "user") == 0 ? ROLE_USER : ROLE_ASSISTANT;
}

static span_t content_of(const render_t *r, size_t i)
{
    return span_of(r->msgs[i].content);
}

/* Every message has a role rocmforge renders and a content. */
static int check_messages(const render_t *r)
{
    const char *fam = family_names[r->family];
    if (r->n == 0)
        return rf_err_set(
            r->err, RF_EFORMAT,
            "chat (%s): the conversation has no messages; a chat job needs at least one", fam);
    if (r->msgs == NULL)
        return rf_err_set(r->err, RF_EFORMAT, "chat (%s): %zu messages announced but none given",
                          fam, r->n);
    for (size_t i = 0; i < r->n; i++) {
        const rf_chat_message_t *m = &r->msgs[i];
        if (m->role == NULL)
            return rf_err_set(r->err, RF_EFORMAT,
                              "chat (%s): message %zu has no role; give system, user or assistant",
                              fam, i);
        if (strcmp(m->role, "system") != 0 && strcmp(m->role, "user") != 0 &&
            strcmp(m->role, "assistant") != 0)
            return rf_err_set(
                r->err, RF_EUNSUPPORTED,
                "chat (%s): message %zu has role \"%.64s\"; rocmforge renders only system, "
                "user and assistant turns: map it to one of those",
                fam, i, m->role);
        if (m->content == NULL)
            return rf_err_set(
                r->err, RF_EFORMAT,
                "chat (%s): message %zu (%s) has no content; use \"\" for an empty turn", fam, i,
                m->role);
    }
    return 0;
}

/* The turns after an optional first system message must go user, assistant,
 * user, ... (llama2, mistral, gemma): turn k (counted from the first message
 * after the system one) must be a user turn exactly when k is even. */
static int check_alternation(const render_t *r, size_t first, size_t k)
{
    size_t i = first + k;
    bool is_user = role_of(r, i) == ROLE_USER;
    if (is_user == (k % 2 == 0))
        return 0;
    return rf_err_set(
        r->err, RF_EFORMAT,
        "chat (%s): message %zu is a %s turn where %s turn is due; the %s template needs user "
        "and assistant turns to alternate after an optional first system message (merge "
        "consecutive turns, or choose another format with --chat-template)",
        family_names[r->family], i, r->msgs[i].role, k % 2 == 0 ? "a user" : "an assistant",
        family_names[r->family]);
}

/* ---- renderers, one per family ---- */

/* Llama 3: every turn is a header, the trimmed text and <|eot_id|>; BOS
 * before the first. */
static int render_llama3(render_t *r)
{
    for (size_t i = 0; i < r->n; i++) {
        if (i == 0)
            put(r, r->bos);
        put(r, "<|start_header_id|>");
        put(r, r->msgs[i].role);
        put(r, "<|end_header_id|>\n\n");
        put_span(r, strip_space(content_of(r, i), true, true));
        put(r, "<|eot_id|>");
    }
    if (r->gen)
        put(r, "<|start_header_id|>assistant<|end_header_id|>\n\n");
    return r->rc;
}

/* Llama 2: "<s>[INST] user [/INST] assistant </s>" per exchange, turn text
 * stripped; the first system message goes into the first turn inside
 * <<SYS>>. A system message later on, where an assistant turn is due, passes
 * the template's alternation test and writes nothing, as in the template. */
static int render_llama2(render_t *r)
{
    bool has_system = role_of(r, 0) == ROLE_SYSTEM;
    size_t first = has_system ? 1 : 0;
    for (size_t k = 0; first + k < r->n; k++) {
        size_t i = first + k;
        int rc = check_alternation(r, first, k);
        if (rc != 0)
            return rc;
        role_t role = role_of(r, i);
        if (role == ROLE_SYSTEM)
            continue;
        if (role == ROLE_USER) {
            put(r, r->bos);
            put(r, "[INST] ");
        } else {
            put(r, " ");
        }
        if (k == 0 && has_system) {
            /* strip() of "<<SYS>>\n" + system + "\n<</SYS>>\n\n" + text:
             * nothing to strip in front; at the end the text's trailing
             * whitespace goes, and the blank line with it if the text was
             * all whitespace. */
            span_t text = strip_space(content_of(r, i), false, true);
            put(r, "<<SYS>>\n");
            put_span(r, content_of(r, 0));
            put(r, "\n<</SYS>>");
            if (text.n > 0) {
                put(r, "\n\n");
                put_span(r, text);
            }
        } else {
            put_span(r, strip_space(content_of(r, i), true, true));
        }
        if (role == ROLE_USER) {
            put(r, " [/INST]");
        } else {
            put(r, " ");
            put(r, r->eos);
        }
    }
    return r->rc;
}

/* ChatML: "<|im_start|>role\ntext<|im_end|>\n" per turn. */
static int render_chatml(render_t *r)
{
    for (size_t i = 0; i < r->n; i++) {
        put(r, "<|im_start|>");
        put(r, r->msgs[i].role);
        put(r, "\n");
        put_span(r, content_of(r, i));
        put(r, "<|im_end|>\n");
    }
    if (r->gen)
        put(r, "<|im_start|>assistant\n");
    return r->rc;
}

/* Index of Qwen 3's "last query": the last user turn that is not a tool
 * response wrapped in <tool_response> tags; n - 1 when there is none. */
static size_t qwen3_last_query(const render_t *r)
{
    for (size_t i = r->n; i-- > 0;) {
        span_t c = content_of(r, i);
        if (role_of(r, i) == ROLE_USER &&
            !(starts_with(c, "<tool_response>") && ends_with(c, "</tool_response>")))
            return i;
    }
    return r->n - 1;
}

/* Qwen 3 assistant turn: the reasoning inside <think> ... </think> is cut
 * out of the content; it is written back, in a normalised <think> block,
 * only for turns after the last query (the current agentic step), where the
 * final turn always gets a block, empty if need be. */
static void render_qwen3_assistant(render_t *r, size_t i, size_t last_query)
{
    span_t content = content_of(r, i);
    span_t reasoning = { "", 0 };
    ptrdiff_t close_last = find_last(content, "</think>");
    if (close_last >= 0) {
        /* content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n') */
        span_t head = { content.p, (size_t)find_first(content, "</think>") };
        head = strip_newlines(head, false, true);
        ptrdiff_t open = find_last(head, "<think>");
        if (open >= 0)
            head = span_from(head, (size_t)open + strlen("<think>"));
        reasoning = strip_newlines(head, true, false);
        /* content.split('</think>')[-1].lstrip('\n') */
        content = strip_newlines(span_from(content, (size_t)close_last + strlen("</think>")), true,
                                 false);
    }
    put(r, "<|im_start|>assistant\n");
    if (i > last_query && (i == r->n - 1 || reasoning.n > 0)) {
        put(r, "<think>\n");
        put_span(r, strip_newlines(reasoning, true, true));
        put(r, "\n</think>\n\n");
        put_span(r, strip_newlines(content, true, false));
    } else {
        put_span(r, content);
    }
    put(r, "<|im_end|>\n");
}

/* Qwen 3: ChatML, with the first system turn written up front and assistant
 * turns as render_qwen3_assistant says. */
static int render_qwen3(render_t *r)
{
    size_t last_query = qwen3_last_query(r);
    if (role_of(r, 0) == ROLE_SYSTEM) {
        put(r, "<|im_start|>system\n");
        put_span(r, content_of(r, 0));
        put(r, "<|im_end|>\n");
    }
    for (size_t i = 0; i < r->n; i++) {
        role_t role = role_of(r, i);
        if (role == ROLE_ASSISTANT) {
            render_qwen3_assistant(r, i, last_query);
        } else if (role == ROLE_USER || i > 0) {
            put(r, "<|im_start|>");
            put(r, r->msgs[i].role);
            put(r, "\n");
            put_span(r, content_of(r, i));
            put(r, "<|im_end|>\n");
        }
    }
    if (r->gen)
        put(r, "<|im_start|>assistant\n");
    return r->rc;
}

/* Mistral Instruct v0.2: BOS once, " [INST] user [/INST]" and
 * " assistant</s>"; the system text opens the first user turn. */
static int render_mistral(render_t *r)
{
    bool has_system = role_of(r, 0) == ROLE_SYSTEM;
    size_t first = has_system ? 1 : 0;
    put(r, r->bos);
    for (size_t k = 0; first + k < r->n; k++) {
        size_t i = first + k;
        int rc = check_alternation(r, first, k);
        if (rc != 0)
            return rc;
        switch (role_of(r, i)) {
        case ROLE_USER:
            put(r, " [INST] ");
            if (k == 0 && has_system) {
                put_span(r, content_of(r, 0));
                put(r, "\n\n");
            }
            put_span(r, content_of(r, i));
            put(r, " [/INST]");
            break;
        case ROLE_ASSISTANT:
            put(r, " ");
            put_span(r, content_of(r, i));
            put(r, r->eos);
            break;
        case ROLE_SYSTEM:
            return rf_err_set(
                r->err, RF_EFORMAT,
                "chat (mistral): message %zu is a system turn; the mistral template takes a "
                "system message only as the first message (fold it into a user turn)",
                i);
        }
    }
    return r->rc;
}

/* Gemma: BOS, then "<start_of_turn>role\n" + trimmed text + "<end_of_turn>\n"
 * with the assistant called "model"; the first system text (untrimmed, plus
 * a blank line) opens the first turn. A later system message where an
 * assistant turn is due is written as a "system" turn, as in the template. */
static int render_gemma(render_t *r)
{
    bool has_system = role_of(r, 0) == ROLE_SYSTEM;
    size_t first = has_system ? 1 : 0;
    put(r, r->bos);
    for (size_t k = 0; first + k < r->n; k++) {
        size_t i = first + k;
        int rc = check_alternation(r, first, k);
        if (rc != 0)
            return rc;
        put(r, "<start_of_turn>");
        put(r, role_of(r, i) == ROLE_ASSISTANT ? "model" : r->msgs[i].role);
        put(r, "\n");
        if (k == 0 && has_system) {
            put_span(r, content_of(r, 0));
            put(r, "\n\n");
        }
        put_span(r, strip_space(content_of(r, i), true, true));
        put(r, "<end_of_turn>\n");
    }
    if (r->gen)
        put(r, "<start_of_turn>model\n");
    return r->rc;
}

/* Phi-3: "<|role|>\ntext<|end|>\n" per turn; then the assistant opening, or
 * EOS when no generation prompt is asked for. */
static int render_phi3(render_t *r)
{
    for (size_t i = 0; i < r->n; i++) {
        put(r, "<|");
        put(r, r->msgs[i].role);
        put(r, "|>\n");
        put_span(r, content_of(r, i));
        put(r, "<|end|>\n");
    }
    put(r, r->gen ? "<|assistant|>\n" : r->eos);
    return r->rc;
}

/* ---- public API ---- */

rf_chat_family_t rf_chat_family_from_name(const char *name)
{
    if (name == NULL)
        return RF_CHAT_UNKNOWN;
    for (size_t f = 1; f < N_FAMILIES; f++)
        if (strcasecmp(name, family_names[f]) == 0)
            return (rf_chat_family_t)f;
    return RF_CHAT_UNKNOWN;
}

const char *rf_chat_family_name(rf_chat_family_t family)
{
    if ((size_t)family >= N_FAMILIES)
        return family_names[RF_CHAT_UNKNOWN];
    return family_names[family];
}

rf_chat_family_t rf_chat_detect(const char *t)
{
    if (t == NULL)
        return RF_CHAT_UNKNOWN;
    if (strstr(t, "<|start_header_id|>"))
        return RF_CHAT_LLAMA3;
    if (strstr(t, "<|im_start|>")) {
        if (!strstr(t, "<think>"))
            return RF_CHAT_CHATML;
        /* Qwen 3 keeps reasoning only after the last user query. Other
         * ChatML templates with <think> (QwQ, distilled reasoners) drop or
         * open it differently: better an error than a wrong prompt. */
        if (strstr(t, "last_query_index") && strstr(t, "reasoning_content"))
            return RF_CHAT_QWEN3;
        return RF_CHAT_UNKNOWN;
    }
    if (strstr(t, "[INST]"))
        return strstr(t, "<<SYS>>") ? RF_CHAT_LLAMA2 : RF_CHAT_MISTRAL;
    if (strstr(t, "<start_of_turn>"))
        return RF_CHAT_GEMMA;
    if (strstr(t, "<|user|>") && strstr(t, "<|end|>"))
        return RF_CHAT_PHI3;
    return RF_CHAT_UNKNOWN;
}

bool rf_chat_template_forces_prompt(const char *template_text)
{
    switch (rf_chat_detect(template_text)) {
    case RF_CHAT_LLAMA3:
    case RF_CHAT_CHATML:
    case RF_CHAT_QWEN3:
    case RF_CHAT_GEMMA:
    case RF_CHAT_PHI3: return strstr(template_text, "add_generation_prompt") == NULL;
    default: return false;
    }
}

int rf_chat_render(rf_chat_family_t family, const rf_chat_message_t *messages, size_t n,
                   const rf_chat_options_t *opt, rf_bytes_t *out, rf_err_t *err)
{
    if (out == NULL)
        return rf_err_set(err, -EINVAL, "chat: no output buffer given to rf_chat_render");
    render_t r = {
        .family = family,
        .msgs = messages,
        .n = n,
        .gen = opt != NULL && opt->add_generation_prompt,
        .bos = opt != NULL && opt->bos_token != NULL ? opt->bos_token : "",
        .eos = opt != NULL && opt->eos_token != NULL ? opt->eos_token : "",
        .out = out,
        .err = err,
    };
    if ((size_t)family >= N_FAMILIES || family == RF_CHAT_UNKNOWN)
        return rf_err_set(
            err, RF_EUNSUPPORTED,
            "chat: no chat format chosen (the model's template was not recognised); pass "
            "--chat-template with one of llama3, llama2, chatml, qwen3, mistral, gemma, phi3");
    int rc = check_messages(&r);
    if (rc != 0)
        return rc;

    size_t start = out->len;
    switch (family) {
    case RF_CHAT_LLAMA3: rc = render_llama3(&r); break;
    case RF_CHAT_LLAMA2: rc = render_llama2(&r); break;
    case RF_CHAT_CHATML: rc = render_chatml(&r); break;
    case RF_CHAT_QWEN3: rc = render_qwen3(&r); break;
    case RF_CHAT_MISTRAL: rc = render_mistral(&r); break;
    case RF_CHAT_GEMMA: rc = render_gemma(&r); break;
    case RF_CHAT_PHI3: rc = render_phi3(&r); break;
    case RF_CHAT_UNKNOWN: break; /* rejected above */
    }
    if (rc != 0) {
        out->len = start;
        if (out->data != NULL)
            out->data[start] = '\0';
        if (rc == -ENOMEM)
            rf_err_set(err, rc, "chat (%s): out of memory rendering %zu messages",
                       family_names[family], n);
    }
    return rc;
}
