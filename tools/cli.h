/* The `reformer` command: shared declarations of its subcommands. */
#ifndef RF_CLI_H
#define RF_CLI_H

#include "reformer/reformer.h"

/* Exit statuses: 0 success, 1 a failure while running, 2 a usage error. */
enum { RF_EXIT_OK = 0, RF_EXIT_FAIL = 1, RF_EXIT_USAGE = 2 };

int cmd_devices(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_sample(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_tune(int argc, char **argv);

/* The whole tool: argv[0] is the program, argv[1] the subcommand. main()
 * is this; the CLI fuzz target (tests/fuzz/fuzz_cli.c) calls it in-process. */
int cli_main(int argc, char **argv);
/* Set by the CLI fuzz target only: each subcommand stops once its arguments
 * and input files are checked (and, for eval and sample, the model loaded),
 * before the long work (training, generation, benchmarks). */
extern int cli_dry_run;

/* Print "reformer <cmd>: <message>" for a failed library call; returns 1
 * (or 2 when the status is an invalid argument from the user). */
int cli_fail(const char *cmd, rf_status s);
/* True if argv holds -h or --help. */
int cli_wants_help(int argc, char **argv);

/* ---- strict numbers (cli_args.c): every numeric option goes through these.
 * The whole string must be the number; the range is checked before any
 * narrowing; NaN and infinities are refused; lists hold at most `cap`.
 * Return 1 and set *out, or print one line "reformer CMD: OPT: <what is
 * wrong>" (naming the range) and return 0: the caller exits RF_EXIT_USAGE. */
int cli_int(const char *cmd, const char *opt, const char *v, long long lo, long long hi, long long *out);
int cli_int32(const char *cmd, const char *opt, const char *v, int lo, int hi, int *out);
int cli_u64(const char *cmd, const char *opt, const char *v, unsigned long long *out);
/* A finite decimal in [lo, hi], or (lo, hi] when lo_open. */
int cli_double(const char *cmd, const char *opt, const char *v, double lo, double hi, int lo_open, double *out);
/* "a,b,c": 1 to cap integers, each in [lo, hi]; *n is the count. */
int cli_int_list(const char *cmd, const char *opt, const char *v, long long lo, long long hi, long long *out, int cap,
                 int *n);

/* ---- files and folders (cli_files.c) ---- */
/* A whole input file (regular files only: a FIFO, folder or device is
 * refused by name before it is opened). Prints and returns 0 on failure. */
int cli_read_input(const char *cmd, const char *opt, const char *path, unsigned char **bytes, size_t *n);

#endif
