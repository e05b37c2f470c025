/* cmd_submit.c - `rocmforge submit DB FILE.jsonl`: put input lines into a run
 *
 * Opens (creating when missing) the job database, turns the command-line
 * parameter options into the run's defaults, streams the file through
 * rf_ingest_file and prints what happened: accepted, already present,
 * rejected with the first reasons, blank lines skipped. The input format is
 * documented in docs/submit.md.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "db.h"
#include "ingest.h"

static void submit_usage(FILE *out)
{
    fprintf(out,
            "usage: rocmforge submit DB FILE.jsonl [--run NAME] [defaults...]\n"
            "\n"
            "Add one job per line of FILE.jsonl ('-': stdin) to run NAME of the job database\n"
            "DB (created when missing). Lines are {\"custom_id\", \"prompt\"}, {\"custom_id\",\n"
            "\"messages\"}, {\"custom_id\", \"context\", \"continuation\"} or OpenAI Batch request\n"
            "lines; see docs/submit.md. Bad lines are recorded in rejected_lines and the\n"
            "others go in. Submitting the same file again adds nothing twice.\n"
            "\n"
            "options:\n"
            "      --run NAME               run to add to (default: FILE's name without\n"
            "                               its extension); created when missing\n"
            "      --quiet                  no progress on stderr\n"
            "  -h, --help                   show this help\n"
            "\n"
            "defaults for parameters a line does not set (stored with the run, and merged\n"
            "over what an earlier submit to the run stored):\n"
            "      --max-tokens N           tokens to generate, 1..1000000 (built-in: 256)\n"
            "      --temperature T          >= 0; 0 is greedy (built-in: 1)\n"
            "      --top-p P                in (0, 1] (built-in: 1)\n"
            "      --top-k K                0: off (built-in)\n"
            "      --min-p P                in [0, 1] (built-in: 0)\n"
            "      --repetition-penalty R   > 0; 1: off (built-in)\n"
            "      --frequency-penalty F    in [-2, 2] (built-in: 0)\n"
            "      --presence-penalty P     in [-2, 2] (built-in: 0)\n"
            "      --stop TEXT              stop string (repeatable, at most 16)\n"
            "      --seed N                 sampling seed >= 0 (built-in: 0)\n"
            "      --n N                    samples per prompt, 1..128 (built-in: 1)\n"
            "      --logprobs               return the sampled tokens' log-probabilities\n"
            "      --top-logprobs K         and the K most likely alternatives, 0..20\n"
            "      --model NAME             model name recorded in params (informational)\n"
            "      --priority N             higher runs first (built-in: 0)\n"
            "      --not-before TIME        RFC 3339 time or ms since 1970: not started before\n"
            "      --max-attempts N         tries before a job is failed, 1..100 (built-in: 3)\n"
            "\n"
            "Exit status: 0 every line went in (or was already there), 1 some lines were\n"
            "rejected (the others went in) or the database failed, 2 usage error.\n");
}

/* The option's text as the JSON value a line would hold: a number when it
 * reads as one, else a string. */
static json_t *option_value(const char *text, bool always_string)
{
    if (!always_string) {
        json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
        if (json_is_number(v))
            return v;
        json_decref(v);
    }
    return json_string(text);
}

/* "run" from "dir/run.jsonl". */
static char *run_name_of(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    char *name = strdup(base);
    if (name == NULL)
        return NULL;
    char *dot = strrchr(name, '.');
    if (dot != NULL && dot != name)
        *dot = '\0';
    return name;
}

static void print_report(const char *path, const char *run, const rf_ingest_stats_t *s)
{
    printf("%s: run '%s' (run_id %lld): %lld accepted, %lld already present, %lld rejected",
           path, run, (long long)s->run_id, (long long)s->accepted, (long long)s->present,
           (long long)s->rejected);
    if (s->blank > 0)
        printf(", %lld blank lines skipped", (long long)s->blank);
    printf(" (%lld lines)\n", (long long)s->lines);
    if (s->rejected == 0)
        return;
    for (size_t i = 0; i < s->n_reasons; i++)
        printf("  %s:%lld: %s\n", path, (long long)s->reason_line[i], s->reason[i]);
    if (s->rejected > (int64_t)s->n_reasons)
        printf("  ... and %lld more\n", (long long)(s->rejected - (int64_t)s->n_reasons));
    printf("All reasons: sqlite3 DB \"SELECT source_line, reason FROM rejected_lines WHERE "
           "run_id = %lld ORDER BY source_line\"\n", (long long)s->run_id);
}

int rf__cmd_submit(int argc, char **argv)
{
    enum { OPT_RUN = 256, OPT_QUIET, OPT_PARAM };
    /* Parameter options map to line fields by name: --top-p is "top_p". */
    static const struct option long_options[] = {
        {"run", required_argument, NULL, OPT_RUN},
        {"quiet", no_argument, NULL, OPT_QUIET},
        {"help", no_argument, NULL, 'h'},
        {"max-tokens", required_argument, NULL, OPT_PARAM},
        {"temperature", required_argument, NULL, OPT_PARAM},
        {"top-p", required_argument, NULL, OPT_PARAM},
        {"top-k", required_argument, NULL, OPT_PARAM},
        {"min-p", required_argument, NULL, OPT_PARAM},
        {"repetition-penalty", required_argument, NULL, OPT_PARAM},
        {"frequency-penalty", required_argument, NULL, OPT_PARAM},
        {"presence-penalty", required_argument, NULL, OPT_PARAM},
        {"stop", required_argument, NULL, OPT_PARAM},
        {"seed", required_argument, NULL, OPT_PARAM},
        {"n", required_argument, NULL, OPT_PARAM},
        {"logprobs", no_argument, NULL, OPT_PARAM},
        {"top-logprobs", required_argument, NULL, OPT_PARAM},
        {"model", required_argument, NULL, OPT_PARAM},
        {"priority", required_argument, NULL, OPT_PARAM},
        {"not-before", required_argument, NULL, OPT_PARAM},
        {"max-attempts", required_argument, NULL, OPT_PARAM},
        {NULL, 0, NULL, 0},
    };
    const char *run = NULL;
    bool quiet = false;
    json_t *defaults = json_object(), *stops = json_array();
    int status = RF_EXIT_USAGE;
    char *run_owned = NULL;
    rf_db_t *db = NULL;
    if (defaults == NULL || stops == NULL) {
        rf__cli_error("submit", "out of memory");
        status = RF_EXIT_FAIL;
        goto done;
    }
    optind = 1;
    opterr = 0;
    int c, opt_index = -1;
    while ((c = getopt_long(argc, argv, "h", long_options, &opt_index)) != -1) {
        if (c == 'h') {
            submit_usage(stdout);
            status = RF_EXIT_OK;
            goto done;
        }
        if (c == OPT_RUN) {
            run = optarg;
        } else if (c == OPT_QUIET) {
            quiet = true;
        } else if (c == OPT_PARAM) {
            char field[32];
            snprintf(field, sizeof field, "%s", long_options[opt_index].name);
            for (char *p = field; *p; p++)
                *p = *p == '-' ? '_' : *p;
            if (strcmp(field, "stop") == 0) {
                if (json_array_append_new(stops, json_string(optarg)) < 0) {
                    rf__cli_error("submit", "bad value for --stop: not UTF-8 text");
                    goto done;
                }
                continue;
            }
            json_t *v = optarg ? option_value(optarg, strcmp(field, "model") == 0)
                               : json_true();
            rf_err_t err = {0};
            int rc = v ? rf_ingest_defaults_add(defaults, field, v, &err) : RF_ETYPE;
            json_decref(v);
            if (rc < 0) {
                rf__cli_error("submit", "bad value '%s' for --%s: %s", optarg ? optarg : "",
                              long_options[opt_index].name, err.msg[0] ? err.msg : "not UTF-8 text");
                goto done;
            }
        } else {
            rf__cli_error("submit", "unknown or incomplete option '%s'; see 'rocmforge submit "
                          "--help'", argv[optind - 1]);
            goto done;
        }
    }
    if (json_array_size(stops) > 0) {
        rf_err_t err = {0};
        if (rf_ingest_defaults_add(defaults, "stop", stops, &err) < 0) {
            rf__cli_error("submit", "bad --stop: %s", err.msg);
            goto done;
        }
    }
    if (argc - optind != 2) {
        rf__cli_error("submit", "expected DB and FILE.jsonl; see 'rocmforge submit --help'");
        goto done;
    }
    const char *db_path = argv[optind], *path = argv[optind + 1];
    if (run == NULL) {
        if (strcmp(path, "-") == 0) {
            rf__cli_error("submit", "reading stdin: name the run with --run NAME");
            goto done;
        }
        run = run_owned = run_name_of(path);
    }
    if (run == NULL || run[0] == '\0') {
        rf__cli_error("submit", "the run name is empty; give --run NAME");
        goto done;
    }
    status = RF_EXIT_FAIL;
    if (strcmp(path, "-") != 0 && access(path, R_OK) != 0) {
        rf__cli_error("submit", "%s: %s", path, strerror(errno));
        goto done;
    }
    rf_err_t err = {0};
    /* synchronous=NORMAL: a power cut may lose the last batches, which a
     * resubmission restores (submit is idempotent); a crash loses nothing. */
    if (rf_db_open(&db, db_path, RF_DB_CREATE | RF_DB_SYNC_NORMAL, &err) < 0) {
        rf__cli_error("submit", "%s", err.msg);
        goto done;
    }
    rf_ingest_options_t opt = {.run_name = run, .defaults = defaults,
                               .progress = !quiet};
    rf_ingest_stats_t stats;
    int rc = rf_ingest_file(db, path, &opt, &stats, &err);
    if (rc < 0) {
        rf__cli_error("submit", "%s", err.msg[0] ? err.msg : rf_strerror(rc));
        if (stats.lines > 0)
            fprintf(stderr, "rocmforge: submit: lines committed before the failure stay in; "
                    "submitting the file again adds only what is missing\n");
        goto done;
    }
    print_report(path, run, &stats);
    status = stats.rejected > 0 ? RF_EXIT_FAIL : RF_EXIT_OK;
done:
    rf_db_close(db);
    free(run_owned);
    json_decref(stops);
    json_decref(defaults);
    return status;
}
