/* cli.h - subcommands of the rocmforge executable (private to runner/)
 *
 * Each subcommand takes its own argv (argv[0] is the subcommand name) and
 * returns the process exit status: 0 success, 1 failure on data or I/O
 * (message on stderr), 2 usage error.
 */
#ifndef RF_CLI_H
#define RF_CLI_H

enum { RF_EXIT_OK = 0, RF_EXIT_FAIL = 1, RF_EXIT_USAGE = 2 };

int rf__cmd_inspect(int argc, char **argv);
int rf__cmd_synth(int argc, char **argv);
int rf__cmd_vocab(int argc, char **argv);
int rf__cmd_tokenize(int argc, char **argv);
int rf__cmd_detokenize(int argc, char **argv);
int rf__cmd_bench(int argc, char **argv);
int rf__cmd_chat(int argc, char **argv);

/* Print "rocmforge: CMD: message" plus newline to stderr. */
void rf__cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif /* RF_CLI_H */
