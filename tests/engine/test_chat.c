/* test_chat.c - chat template detection, family names, renderings and errors
 *
 * The byte-exact comparison with the reference Jinja engine over many
 * conversations is test_chat_conformance.c; here each family's format is
 * spelled out for small conversations, and the error paths are checked.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* ---- helpers ---- */

static char *slurp_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s: %s", path, strerror(errno));
    cr_assert_eq(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    cr_assert_geq(n, 0);
    cr_assert_eq(fseek(f, 0, SEEK_SET), 0);
    char *buf = malloc((size_t)n + 1);
    cr_assert_not_null(buf);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* The Jinja templates the conformance suite renders with. */
static char *template_file(const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/../conformance/templates/%s.jinja", RF_FIXTURES, name);
    return slurp_text(path);
}

/* Render and expect success; returns the text (caller frees). */
static char *render_ok(rf_chat_family_t family, const rf_chat_message_t *msgs, size_t n, bool gen,
                       const char *bos, const char *eos)
{
    rf_chat_options_t opt = { .add_generation_prompt = gen, .bos_token = bos, .eos_token = eos };
    rf_bytes_t out = { 0 };
    rf_err_t err = { 0 };
    int rc = rf_chat_render(family, msgs, n, &opt, &out, &err);
    cr_assert_eq(rc, 0, "%s render failed: rc %d: %s", rf_chat_family_name(family), rc, err.msg);
    char *text = strndup(out.data ? out.data : "", out.len);
    cr_assert_not_null(text);
    rf_bytes_free(&out);
    return text;
}

static void expect_render(rf_chat_family_t family, const rf_chat_message_t *msgs, size_t n,
                          bool gen, const char *bos, const char *eos, const char *want)
{
    char *got = render_ok(family, msgs, n, gen, bos, eos);
    cr_expect_str_eq(got, want, "%s (add_generation_prompt=%d)", rf_chat_family_name(family), gen);
    free(got);
}

/* Render and expect the error code; out must keep what it held. */
static void expect_error(rf_chat_family_t family, const rf_chat_message_t *msgs, size_t n,
                         int want_rc, const char *want_in_msg)
{
    rf_bytes_t out = { 0 };
    cr_assert_eq(rf_bytes_append(&out, "kept", 4), 0);
    rf_err_t err = { 0 };
    rf_chat_options_t opt = { .add_generation_prompt = true,
                              .bos_token = "<s>",
                              .eos_token = "</s>" };
    int rc = rf_chat_render(family, msgs, n, &opt, &out, &err);
    cr_expect_eq(rc, want_rc, "%s: rc %d (%s), want %d", rf_chat_family_name(family), rc, err.msg,
                 want_rc);
    cr_expect_eq(err.code, want_rc);
    cr_expect_neq(strstr(err.msg, want_in_msg), NULL, "%s: message \"%s\" lacks \"%s\"",
                  rf_chat_family_name(family), err.msg, want_in_msg);
    cr_expect_eq(out.len, 4, "a failed render changed the output");
    cr_expect_str_eq(out.data, "kept");
    rf_bytes_free(&out);
}

static const rf_chat_family_t all_families[] = {
    RF_CHAT_LLAMA3,  RF_CHAT_LLAMA2, RF_CHAT_CHATML, RF_CHAT_QWEN3,
    RF_CHAT_MISTRAL, RF_CHAT_GEMMA,  RF_CHAT_PHI3,
};

/* ---- detection ---- */

Test(chat, detect_template_files)
{
    static const struct {
        const char *file;
        rf_chat_family_t family;
    } cases[] = {
        { "llama2", RF_CHAT_LLAMA2 }, { "mistral", RF_CHAT_MISTRAL }, { "gemma", RF_CHAT_GEMMA },
        { "phi3", RF_CHAT_PHI3 },     { "chatml", RF_CHAT_CHATML },
    };
    for (size_t i = 0; i < N_OF(cases); i++) {
        char *text = template_file(cases[i].file);
        rf_chat_family_t got = rf_chat_detect(text);
        cr_expect_eq(got, cases[i].family, "%s.jinja detected as %s", cases[i].file,
                     rf_chat_family_name(got));
        free(text);
    }
}

Test(chat, detect_markers)
{
    /* Meta-Llama-3's template as first published (the package's). */
    cr_expect_eq(
        rf_chat_detect("{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + "
                       "'<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}"
                       "{% endfor %}"),
        RF_CHAT_LLAMA3);
    /* Qwen 2.5: ChatML with tools, no <think>. */
    cr_expect_eq(
        rf_chat_detect(
            "{%- if tools %}<tools></tools>{%- endif %}{{- '<|im_start|>' + message.role + "
            "'\\n' + message.content + '<|im_end|>' + '\\n' }}"),
        RF_CHAT_CHATML);
    /* Qwen 3: ChatML with its <think> markers. */
    cr_expect_eq(rf_chat_detect("{%- set ns = namespace(last_query_index=messages|length - 1) %}"
                                "{%- if message.reasoning_content is defined %}{%- endif %}"
                                "{{- '<|im_start|>' + message.role + '\\n<think>\\n' }}"),
                 RF_CHAT_QWEN3);
    /* A reasoning ChatML template of another shape: not Qwen 3, not plain. */
    cr_expect_eq(rf_chat_detect("{{ '<|im_start|>assistant\\n<think>\\n' }}{% set c = "
                                "content.split('</think>')[-1] %}"),
                 RF_CHAT_UNKNOWN);
    cr_expect_eq(rf_chat_detect("{{ bos_token + '[INST] <<SYS>>\\n' + s + '\\n<</SYS>>\\n\\n' }}"),
                 RF_CHAT_LLAMA2);
    cr_expect_eq(rf_chat_detect("{{ bos_token }}{{ '[INST] ' + m + ' [/INST]' }}"),
                 RF_CHAT_MISTRAL);
    cr_expect_eq(rf_chat_detect("{{ '<start_of_turn>' + role + '\\n' }}"), RF_CHAT_GEMMA);
    cr_expect_eq(rf_chat_detect("{{'<|user|>\\n' + message['content'] + '<|end|>\\n'}}"),
                 RF_CHAT_PHI3);
    /* Zephyr writes <|user|> but ends turns with </s>: not Phi-3. */
    cr_expect_eq(rf_chat_detect("{{ '<|user|>\\n' + message['content'] + eos_token }}"),
                 RF_CHAT_UNKNOWN);
    cr_expect_eq(
        rf_chat_detect("{% for m in messages %}USER: {{ m.content }} ASSISTANT:{% endfor %}"),
        RF_CHAT_UNKNOWN);
    cr_expect_eq(rf_chat_detect(""), RF_CHAT_UNKNOWN);
    cr_expect_eq(rf_chat_detect(NULL), RF_CHAT_UNKNOWN);
}

Test(chat, forces_prompt_only_where_the_template_ignores_the_flag)
{
    const char *released =
        "{% for message in messages %}{{ '<|start_header_id|>' + message['role'] }}{% endfor %}"
        "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}";
    const char *fixed =
        "{% for message in messages %}{{ '<|start_header_id|>' + message['role'] }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
        "{% endif %}";
    cr_expect(rf_chat_template_forces_prompt(released));
    cr_expect_not(rf_chat_template_forces_prompt(fixed));
    char *llama2 = template_file("llama2"); /* no flag, but no opening either */
    cr_expect_not(rf_chat_template_forces_prompt(llama2));
    free(llama2);
    char *chatml = template_file("chatml");
    cr_expect_not(rf_chat_template_forces_prompt(chatml));
    free(chatml);
    cr_expect_not(rf_chat_template_forces_prompt("no markers at all"));
    cr_expect_not(rf_chat_template_forces_prompt(NULL));
}

/* ---- names ---- */

Test(chat, family_names_round_trip)
{
    static const char *const names[] = { "llama3",  "llama2", "chatml", "qwen3",
                                         "mistral", "gemma",  "phi3" };
    for (size_t i = 0; i < N_OF(all_families); i++) {
        cr_expect_str_eq(rf_chat_family_name(all_families[i]), names[i]);
        cr_expect_eq(rf_chat_family_from_name(names[i]), all_families[i], "%s", names[i]);
    }
    cr_expect_eq(rf_chat_family_from_name("Llama3"), RF_CHAT_LLAMA3);
    cr_expect_eq(rf_chat_family_from_name("QWEN3"), RF_CHAT_QWEN3);
    cr_expect_eq(rf_chat_family_from_name("llama-3"), RF_CHAT_UNKNOWN);
    cr_expect_eq(rf_chat_family_from_name("unknown"), RF_CHAT_UNKNOWN);
    cr_expect_eq(rf_chat_family_from_name(""), RF_CHAT_UNKNOWN);
    cr_expect_eq(rf_chat_family_from_name(NULL), RF_CHAT_UNKNOWN);
    cr_expect_str_eq(rf_chat_family_name(RF_CHAT_UNKNOWN), "unknown");
    cr_expect_str_eq(rf_chat_family_name((rf_chat_family_t)99), "unknown");
}

/* ---- each family's format ---- */

static const rf_chat_message_t exchange[] = {
    { "system", "Be brief." },
    { "user", "Hi" },
    { "assistant", "Hello." },
    { "user", "Bye" },
};

Test(chat, llama3_format)
{
    const char *body =
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|>";
    char want[1024];
    snprintf(want, sizeof want, "%s<|start_header_id|>assistant<|end_header_id|>\n\n", body);
    expect_render(RF_CHAT_LLAMA3, exchange, N_OF(exchange), false, "<|begin_of_text|>",
                  "<|end_of_text|>", body);
    expect_render(RF_CHAT_LLAMA3, exchange, N_OF(exchange), true, "<|begin_of_text|>",
                  "<|end_of_text|>", want);
}

Test(chat, llama3_trims_python_whitespace)
{
    /* U+0085 and U+3000 are whitespace to Python's strip(); U+FEFF is not. */
    const rf_chat_message_t msgs[] = { { "user", " \t\xc2\x85x\xe3\x80\x80\n" },
                                       { "assistant", "\xef\xbb\xbfy " } };
    expect_render(RF_CHAT_LLAMA3, msgs, 2, false, "<B>", "",
                  "<B><|start_header_id|>user<|end_header_id|>\n\nx<|eot_id|>"
                  "<|start_header_id|>assistant<|end_header_id|>\n\n\xef\xbb\xbfy<|eot_id|>");
}

Test(chat, llama2_format)
{
    expect_render(
        RF_CHAT_LLAMA2, exchange, N_OF(exchange), true, "<s>", "</s>",
        "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello. </s><s>[INST] Bye [/INST]");
    /* The whole first turn is stripped: a blank user text takes the blank
     * line after <</SYS>> with it; an empty system message still counts. */
    const rf_chat_message_t blank[] = { { "system", "" }, { "user", " \n " } };
    expect_render(RF_CHAT_LLAMA2, blank, 2, false, "<s>", "</s>",
                  "<s>[INST] <<SYS>>\n\n<</SYS>> [/INST]");
}

Test(chat, chatml_format)
{
    expect_render(RF_CHAT_CHATML, exchange, N_OF(exchange), true, "", "<|im_end|>",
                  "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                  "<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n"
                  "<|im_start|>assistant\n");
}

Test(chat, mistral_format)
{
    expect_render(RF_CHAT_MISTRAL, exchange, N_OF(exchange), true, "<s>", "</s>",
                  "<s> [INST] Be brief.\n\nHi [/INST] Hello.</s> [INST] Bye [/INST]");
}

Test(chat, gemma_format)
{
    expect_render(RF_CHAT_GEMMA, exchange, N_OF(exchange), true, "<bos>", "<eos>",
                  "<bos><start_of_turn>user\nBe "
                  "brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello.<end_of_turn>\n"
                  "<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n");
}

Test(chat, phi3_format)
{
    const char *body =
        "<|system|>\nBe brief.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\nHello.<|end|>\n"
        "<|user|>\nBye<|end|>\n";
    char want[1024];
    snprintf(want, sizeof want, "%s<|assistant|>\n", body);
    expect_render(RF_CHAT_PHI3, exchange, N_OF(exchange), true, "<s>", "<|endoftext|>", want);
    snprintf(want, sizeof want, "%s<|endoftext|>", body); /* EOS ends a finished conversation */
    expect_render(RF_CHAT_PHI3, exchange, N_OF(exchange), false, "<s>", "<|endoftext|>", want);
}

Test(chat, qwen3_keeps_reasoning_only_after_the_last_query)
{
    const rf_chat_message_t msgs[] = {
        { "user", "2+2?" },
        { "assistant", "<think>\nadd\n</think>\n\n4" },
        { "user", "3+3?" },
        { "assistant", "<think>\nadd again\n</think>\n\n6" },
    };
    expect_render(RF_CHAT_QWEN3, msgs, N_OF(msgs), false, "", "<|im_end|>",
                  "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n"
                  "<|im_start|>user\n3+3?<|im_end|>\n"
                  "<|im_start|>assistant\n<think>\nadd again\n</think>\n\n6<|im_end|>\n");
    /* The final turn gets an (empty) think block even without one. */
    const rf_chat_message_t plain[] = { { "user", "hi" }, { "assistant", "hello" } };
    expect_render(RF_CHAT_QWEN3, plain, 2, true, "", "<|im_end|>",
                  "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</"
                  "think>\n\nhello<|im_end|>\n"
                  "<|im_start|>assistant\n");
}

Test(chat, generation_prompt_only_where_the_format_has_one)
{
    static const struct {
        rf_chat_family_t family;
        const char *opening; /* appended by add_generation_prompt; "" if none */
    } cases[] = {
        { RF_CHAT_LLAMA3, "<|start_header_id|>assistant<|end_header_id|>\n\n" },
        { RF_CHAT_CHATML, "<|im_start|>assistant\n" },
        { RF_CHAT_QWEN3, "<|im_start|>assistant\n" },
        { RF_CHAT_GEMMA, "<start_of_turn>model\n" },
        { RF_CHAT_LLAMA2, "" },
        { RF_CHAT_MISTRAL, "" },
    };
    const rf_chat_message_t msgs[] = { { "user", "hi" } };
    for (size_t i = 0; i < N_OF(cases); i++) {
        char *without = render_ok(cases[i].family, msgs, 1, false, "<s>", "</s>");
        char *with = render_ok(cases[i].family, msgs, 1, true, "<s>", "</s>");
        char want[512];
        snprintf(want, sizeof want, "%s%s", without, cases[i].opening);
        cr_expect_str_eq(with, want, "%s", rf_chat_family_name(cases[i].family));
        free(without);
        free(with);
    }
}

Test(chat, appends_to_what_out_holds_and_opt_may_be_null)
{
    rf_bytes_t out = { 0 };
    cr_assert_eq(rf_bytes_append(&out, "prefix|", 7), 0);
    const rf_chat_message_t msgs[] = { { "user", "x" } };
    cr_assert_eq(rf_chat_render(RF_CHAT_CHATML, msgs, 1, NULL, &out, NULL), 0);
    cr_expect_str_eq(out.data, "prefix|<|im_start|>user\nx<|im_end|>\n");
    rf_bytes_free(&out);
}

/* ---- errors ---- */

Test(chat, unknown_family_names_the_override_flag)
{
    const rf_chat_message_t msgs[] = { { "user", "x" } };
    expect_error(RF_CHAT_UNKNOWN, msgs, 1, RF_EUNSUPPORTED, "--chat-template");
    expect_error((rf_chat_family_t)42, msgs, 1, RF_EUNSUPPORTED, "--chat-template");
}

Test(chat, unknown_role_names_role_and_index)
{
    const rf_chat_message_t msgs[] = { { "system", "s" }, { "user", "u" }, { "tool", "42" } };
    for (size_t i = 0; i < N_OF(all_families); i++) {
        expect_error(all_families[i], msgs, N_OF(msgs), RF_EUNSUPPORTED,
                     "message 2 has role \"tool\"");
    }
}

Test(chat, non_alternating_roles_are_rejected_where_the_template_rejects_them)
{
    const rf_chat_message_t two_users[] = { { "system", "s" },
                                            { "user", "one" },
                                            { "user", "two" } };
    const rf_chat_message_t assistant_first[] = { { "assistant", "a" }, { "user", "u" } };
    const rf_chat_family_t strict[] = { RF_CHAT_LLAMA2, RF_CHAT_MISTRAL, RF_CHAT_GEMMA };
    for (size_t i = 0; i < N_OF(strict); i++) {
        expect_error(strict[i], two_users, N_OF(two_users), RF_EFORMAT, "message 2 is a user turn");
        expect_error(strict[i], assistant_first, N_OF(assistant_first), RF_EFORMAT, "alternate");
    }
    /* The other templates take any order. */
    const rf_chat_family_t lenient[] = { RF_CHAT_LLAMA3, RF_CHAT_CHATML, RF_CHAT_QWEN3,
                                         RF_CHAT_PHI3 };
    for (size_t i = 0; i < N_OF(lenient); i++)
        free(render_ok(lenient[i], two_users, N_OF(two_users), true, "", ""));
}

Test(chat, mistral_rejects_a_later_system_message)
{
    const rf_chat_message_t msgs[] = { { "user", "u" }, { "system", "late" } };
    expect_error(RF_CHAT_MISTRAL, msgs, N_OF(msgs), RF_EFORMAT, "message 1 is a system turn");
    /* Llama 2's template lets it pass and writes nothing for it. */
    expect_render(RF_CHAT_LLAMA2, msgs, N_OF(msgs), false, "<s>", "</s>", "<s>[INST] u [/INST]");
}

Test(chat, malformed_messages_are_errors)
{
    expect_error(RF_CHAT_LLAMA3, NULL, 0, RF_EFORMAT, "no messages");
    const rf_chat_message_t no_role[] = { { "user", "u" }, { NULL, "x" } };
    expect_error(RF_CHAT_LLAMA3, no_role, 2, RF_EFORMAT, "message 1 has no role");
    const rf_chat_message_t no_content[] = { { "user", NULL } };
    expect_error(RF_CHAT_CHATML, no_content, 1, RF_EFORMAT, "message 0 (user) has no content");
    expect_error(RF_CHAT_PHI3, NULL, 3, RF_EFORMAT, "3 messages");
}

Test(chat, null_err_is_allowed)
{
    const rf_chat_message_t msgs[] = { { "user", "one" }, { "user", "two" } };
    rf_bytes_t out = { 0 };
    cr_expect_eq(rf_chat_render(RF_CHAT_LLAMA2, msgs, 2, NULL, &out, NULL), RF_EFORMAT);
    cr_expect_eq(out.len, 0);
    rf_bytes_free(&out);
}
