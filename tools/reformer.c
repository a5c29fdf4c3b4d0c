/* The `reformer` command-line tool: dispatch to one subcommand per file. */
#include <stdio.h>
#include <string.h>
#include "cli.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} subcommand;

static const subcommand commands[] = {
    {"devices", cmd_devices, "list the cpu reference and every OpenCL device"},
    {"verify", cmd_verify, "check a device against the cpu reference, op by op"},
    {"eval", cmd_eval, "bits per byte of a model on a text file"},
    {"sample", cmd_sample, "generate text from a model"},
    {"train", cmd_train, "train on the copy task or a text file, with checkpoints"},
    {"tune", cmd_tune, "time the OpenCL kernels' tile sizes on a device and store the fastest"},
    {"bench", cmd_bench, "benchmarks: attention (paper Fig. 5), gemm, model; --profile, --csv, --json"},
};

static void usage(FILE *f) {
    fprintf(f,
            "usage: reformer <command> [options]\n\n"
            "The Reformer (Kitaev, Kaiser, Levskaya, ICLR 2020) on any OpenCL device,\n"
            "checked against a plain-C cpu reference.\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f,
            "\n'reformer <command> --help' explains a command.\n"
            "Devices: --device NAME or $RF_DEVICE: 'cpu', 'cl:P:D', a name substring, or 'auto'.\n"
            "Logging: RF_LOG=error|warn|info|debug.\n");
}

int cli_wants_help(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return 1;
    return 0;
}

int cli_fail(const char *cmd, rf_status s) {
    fprintf(stderr, "reformer %s: %s: %s\n", cmd, rf_status_str(s), rf_last_error());
    return s == RF_ERR_INVALID_ARG ? RF_EXIT_USAGE : RF_EXIT_FAIL;
}

int cli_dry_run;

int cli_main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return RF_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return RF_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "reformer: unknown command '%s' (see reformer --help)\n", argv[1]);
    return RF_EXIT_USAGE;
}

#ifndef RF_CLI_NO_MAIN /* the CLI fuzz target brings its own entry point */
int main(int argc, char **argv) { return cli_main(argc, argv); }
#endif
