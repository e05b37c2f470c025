/* cli.h - subcommands of the rocmforge executable (private to runner/)
 *
 * Each subcommand takes its own argv (argv[0] is the subcommand name) and
 * returns the process exit status: 0 success, 1 failure on data or I/O
 * (message on stderr), 2 usage error.
 */
#ifndef RF_CLI_H
#define RF_CLI_H

#include <jansson.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

enum { RF_EXIT_OK = 0, RF_EXIT_FAIL = 1, RF_EXIT_USAGE = 2 };

int rf__cmd_inspect(int argc, char **argv);
int rf__cmd_synth(int argc, char **argv);
int rf__cmd_vocab(int argc, char **argv);
int rf__cmd_tokenize(int argc, char **argv);
int rf__cmd_detokenize(int argc, char **argv);
int rf__cmd_bench(int argc, char **argv);
int rf__bench_batch(int argc, char **argv); /* bench_batch.c */
int rf__cmd_chat(int argc, char **argv);
int rf__cmd_generate(int argc, char **argv);
int rf__cmd_score(int argc, char **argv);
int rf__cmd_quantize(int argc, char **argv);
int rf__cmd_submit(int argc, char **argv);
int rf__cmd_run(int argc, char **argv);
/* launcher.c: run one worker process per GPU in gpus[n_workers] (gpus NULL:
 * n_workers on the device the options choose); argv as rf__cmd_run got it. */
int rf__run_launch(int argc, char **argv, const int *gpus, int n_workers, const char *db_path,
                   bool quiet);
int rf__cmd_runs(int argc, char **argv);
int rf__cmd_status(int argc, char **argv);
int rf__cmd_export(int argc, char **argv);
int rf__cmd_cancel(int argc, char **argv);
int rf__cmd_retry(int argc, char **argv);
int rf__cmd_requeue(int argc, char **argv);
int rf__cmd_shard(int argc, char **argv);
int rf__cmd_merge(int argc, char **argv);

/* JSON string of arbitrary bytes (invalid UTF-8 bytes become U+FFFD), and
 * an unsigned integer that stays exact above 2^63 (as a string). NULL on
 * allocation failure. */
json_t *rf__json_from_bytes(const char *s, size_t len);
json_t *rf__json_u64(uint64_t x);

/* Open path's tokenizer (the GGUF is closed again); on failure print
 * "rocmforge: CMD: ..." and return the error. */
struct rf_tokenizer;
int rf__cli_open_tokenizer(const char *cmd, const char *path, struct rf_tokenizer **tok);

/* Print "rocmforge: CMD: message" plus newline to stderr. */
void rf__cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Job database helpers (cli_db.c) for the commands that read or steer one.
 * rf__cli_open_db opens an existing database (never creates one: a missing
 * file is an error naming the path); rf__cli_find_run looks a run up by
 * name. Both print "rocmforge: CMD: ..." on failure and return the error. */
struct rf_db;
int rf__cli_open_db(const char *cmd, const char *path, unsigned flags, struct rf_db **db);
int rf__cli_find_run(const char *cmd, struct rf_db *db, const char *name, int64_t *run_id);
int64_t rf__cli_now_ms(void);                                  /* wall clock, ms since 1970 */
void rf__cli_format_time(int64_t ms, char *buf, size_t size);  /* "2026-11-23 15:37:41Z" */

#endif /* RF_CLI_H */
