/* main.c - the rocmforge executable: dispatch to subcommands
 *
 * `rocmforge COMMAND [options]`; `rocmforge help COMMAND` and
 * `rocmforge COMMAND --help` print a command's usage.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

#define RF_VERSION "0.1.0"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command_t;

static const command_t commands[] = {
    {"inspect", rf__cmd_inspect, "show a GGUF file's metadata and tensors"},
    {"synth", rf__cmd_synth, "write a random-weight model of a named shape"},
    {"vocab", rf__cmd_vocab, "vocab import: a Hugging Face tokenizer.json to a vocab-only GGUF"},
    {"tokenize", rf__cmd_tokenize, "print the token ids of the text on stdin"},
    {"detokenize", rf__cmd_detokenize, "print the text of the token ids on stdin"},
    {"generate", rf__cmd_generate, "generate a completion on the CPU, streamed to stdout"},
    {"score", rf__cmd_score, "log-likelihood of a continuation after a context"},
    {"chat", rf__cmd_chat, "render chat messages with the model's chat template"},
    {"quantize", rf__cmd_quantize, "convert a GGUF model's weights to another type"},
    {"submit", rf__cmd_submit, "add the jobs of a JSONL file to a run of a job database"},
    {"run", rf__cmd_run, "run the queued jobs of a job database on a model"},
    {"runs", rf__cmd_runs, "list the runs of a job database with their jobs per state"},
    {"status", rf__cmd_status, "progress, throughput, ETA, errors and compression of a job database"},
    {"export", rf__cmd_export, "write a run's results as JSONL (OpenAI Batch output or simple)"},
    {"cancel", rf__cmd_cancel, "cancel the queued and running jobs of a run, one job, or a state"},
    {"retry", rf__cmd_retry, "put failed and cancelled jobs back in the queue"},
    {"requeue", rf__cmd_requeue, "run finished jobs again (their results are deleted)"},
    {"shard", rf__cmd_shard, "split the queued jobs of a job database into N databases (many hosts)"},
    {"merge", rf__cmd_merge, "bring the results of shards back into one job database"},
    {"bench", rf__cmd_bench, "benchmarks: bench tokenize (tokenizer MB/s), bench cpu (engine tokens/s)"},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *out)
{
    fprintf(out,
            "usage: rocmforge COMMAND [options]\n"
            "\n"
            "Batch offline LLM inference over a SQLite job queue.\n"
            "\n"
            "commands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out,
            "  %-10s %s\n"
            "  %-10s %s\n"
            "\n"
            "Run 'rocmforge COMMAND --help' for a command's options.\n",
            "help", "show this help, or a command's: rocmforge help COMMAND", "version",
            "print the version");
}

static const command_t *find_command(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return RF_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "help") == 0 || strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
        if (argc >= 3 && find_command(argv[2]) != NULL) {
            char *help_argv[] = {argv[2], "--help", NULL};
            return find_command(argv[2])->run(2, help_argv);
        }
        usage(stdout);
        return RF_EXIT_OK;
    }
    if (strcmp(name, "version") == 0 || strcmp(name, "--version") == 0) {
        printf("rocmforge %s\n", RF_VERSION);
        return RF_EXIT_OK;
    }
    const command_t *cmd = find_command(name);
    if (cmd == NULL) {
        fprintf(stderr, "rocmforge: unknown command '%s'; run 'rocmforge help' for the list\n",
                name);
        return RF_EXIT_USAGE;
    }
    return cmd->run(argc - 1, argv + 1);
}
