/* Input files of the `reformer` subcommands (see cli.h). */
#include <stdio.h>
#include <stdlib.h>
#include "cli.h"
#include "core/core.h"

int cli_read_input(const char *cmd, const char *opt, const char *path, unsigned char **bytes, size_t *n) {
    void *data;
    /* rf_read_file checks the type first: a FIFO or a folder is named as
     * such instead of blocking or reading as 0 bytes. */
    rf_status s = rf_read_file(path, &data, n);
    if (s != RF_OK) {
        fprintf(stderr, "reformer %s: %s: %s\n", cmd, opt, rf_last_error());
        return 0;
    }
    *bytes = data;
    return 1;
}
