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

/* Print "reformer <cmd>: <message>" for a failed library call; returns 1
 * (or 2 when the status is an invalid argument from the user). */
int cli_fail(const char *cmd, rf_status s);
/* True if argv holds -h or --help. */
int cli_wants_help(int argc, char **argv);

#endif
