/* test_demo.c - the demo model through `rocmforge run`: the end-to-end oracle
 *
 * Runs the 360 held-out evaluation jobs of jobs/examples/eval.jsonl on the
 * demo model (jobs/demo/) through the real product path - submit, run,
 * export - and fails when greedy exact-match accuracy drops below the
 * figure the model card (jobs/demo/README.md) states minus one point. A
 * wrong kernel, tokenizer, chat template or scheduler shows up here as a
 * collapse in accuracy.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "testutil.h"

#ifndef RF_SOURCE_DIR
#error "RF_SOURCE_DIR must name the repository root"
#endif

/* The model card's engine accuracy on eval.jsonl (100.00% for both files),
 * minus one point. */
#define CARD_ACCURACY 100.0
#define MIN_ACCURACY (CARD_ACCURACY - 1.0)

static const char *const tasks[] = {"add", "sub", "reverse", "sort", "count", "convert"};
#define N_TASKS (sizeof tasks / sizeof tasks[0])

static void eval_model_on(const char *model, const char *name, const char *device)
{
    const char *db = rf_test_tmp_path("demo", name);
    char args[2048];
    snprintf(args, sizeof args, "submit '%s' '%s/jobs/examples/eval.jsonl' --run eval --quiet",
             db, RF_SOURCE_DIR);
    rf_test_result_t r = rf_test_run(args, NULL);
    cr_assert_eq(r.status, 0, "submit: %s", r.err);
    rf_test_result_free(&r);
    snprintf(args, sizeof args, "run '%s' -m '%s/%s' --device %s --progress none", db,
             RF_SOURCE_DIR, model, device);
    r = rf_test_run(args, NULL);
    cr_assert_eq(r.status, 0, "run: %s", r.err);
    rf_test_result_free(&r);
    snprintf(args, sizeof args, "export '%s' --run eval --format simple", db);
    r = rf_test_run(args, NULL);
    cr_assert_eq(r.status, 0, "export: %s", r.err);

    int right[N_TASKS] = {0}, total[N_TASKS] = {0}, n = 0, n_right = 0;
    char *save = NULL;
    for (char *line = strtok_r(r.out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        json_error_t jerr;
        json_t *j = json_loads(line, 0, &jerr);
        cr_assert_not_null(j, "export line is not JSON: %s", line);
        const char *task = json_string_value(json_object_get(json_object_get(j, "metadata"),
                                                             "task"));
        const char *expected = json_string_value(
            json_object_get(json_object_get(j, "metadata"), "expected"));
        const char *output = json_string_value(json_object_get(j, "output"));
        cr_assert(task && expected && output, "line without task/expected/output: %s", line);
        for (size_t t = 0; t < N_TASKS; t++)
            if (strcmp(task, tasks[t]) == 0) {
                total[t]++;
                right[t] += strcmp(output, expected) == 0;
            }
        n++;
        n_right += strcmp(output, expected) == 0;
        json_decref(j);
    }
    rf_test_result_free(&r);
    cr_assert_eq(n, 360, "%s: %d of 360 jobs exported", name, n);
    double overall = 100.0 * n_right / n;
    cr_log_info("%s: %d/%d = %.2f%% (card: %.2f%%)", model, n_right, n, overall, CARD_ACCURACY);
    cr_assert_geq(overall, MIN_ACCURACY, "%s: accuracy %.2f%% is below %.2f%%", model, overall,
                  MIN_ACCURACY);
    for (size_t t = 0; t < N_TASKS; t++) {
        cr_assert_eq(total[t], 60, "task %s has %d prompts", tasks[t], total[t]);
        cr_assert_geq(100.0 * right[t] / total[t], MIN_ACCURACY - 5.0,
                      "%s: task %s: %d/60", model, tasks[t], right[t]);
    }
}

static void eval_model(const char *model, const char *name)
{
    eval_model_on(model, name, "cpu");
}

Test(demo, eval_accuracy_q8_0, .timeout = 300)
{
    eval_model("jobs/demo/demo-q8_0.gguf", "q8.db");
}

Test(demo, eval_accuracy_f16, .timeout = 300)
{
    eval_model("jobs/demo/demo-f16.gguf", "f16.db");
}

/* ignore_eos keeps generating past <|im_end|> up to max_tokens; without it
 * the demo model stops right after its answer. */
Test(demo, ignore_eos_runs_to_max_tokens, .timeout = 120)
{
    const char *jobs = rf_test_tmp_path("demo", "ie.jsonl");
    rf_test_write_file(jobs,
                       "{\"custom_id\": \"stop\", \"messages\": [{\"role\": \"user\", \"content\": "
                       "\"what is 2 + 2?\"}], \"temperature\": 0, \"max_tokens\": 20}\n"
                       "{\"custom_id\": \"all\", \"messages\": [{\"role\": \"user\", \"content\": "
                       "\"what is 2 + 2?\"}], \"temperature\": 0, \"max_tokens\": 20, "
                       "\"ignore_eos\": true}\n");
    const char *db = rf_test_tmp_path("demo", "ie.db");
    char args[2048];
    snprintf(args, sizeof args, "submit '%s' '%s' --run ie --quiet && %s run '%s' -m "
             "'%s/jobs/demo/demo-q8_0.gguf' --progress none && %s export '%s' --run ie "
             "--format simple", db, jobs, RF_BIN, db, RF_SOURCE_DIR, RF_BIN, db);
    rf_test_result_t r = rf_test_run(args, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.out, "\"custom_id\":\"stop\"") != NULL, "%s", r.out);
    char *all = strstr(r.out, "\"custom_id\":\"all\"");
    cr_assert_not_null(all, "%s", r.out);
    cr_assert(strstr(all, "\"completion_tokens\":20") != NULL, "ignore_eos: %s", all);
    *all = '\0';
    cr_assert(strstr(r.out, "\"completion_tokens\":20") == NULL, "without ignore_eos: %s", r.out);
    rf_test_result_free(&r);
}

/* The same oracle on the GPU backend (GPU builds with a device; else skip). */
Test(demo, eval_accuracy_on_the_gpu, .timeout = 300)
{
    if (!rf_engine_gpu_available())
        cr_skip_test("no GPU device present (or a CPU-only build): the demo is not run on a GPU");
    eval_model_on("jobs/demo/demo-f16.gguf", "gpu-f16.db", "gpu");
    eval_model_on("jobs/demo/demo-q8_0.gguf", "gpu-q8.db", "gpu");
}
