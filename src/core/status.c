/* Status names and the thread-local last-error message. */
#include <stdarg.h>
#include <stdio.h>
#include "core/core.h"

static _Thread_local char last_error[2048];

const char *rf_status_str(rf_status status) {
    switch (status) {
    case RF_OK: return "ok";
    case RF_ERR_INVALID_ARG: return "invalid argument";
    case RF_ERR_OUT_OF_MEMORY: return "out of memory";
    case RF_ERR_DEVICE: return "device error";
    case RF_ERR_BUILD: return "kernel build failed";
    case RF_ERR_NOT_FOUND: return "not found";
    case RF_ERR_IO: return "i/o error";
    case RF_ERR_FORMAT: return "bad file format";
    case RF_ERR_UNSUPPORTED: return "unsupported";
    case RF_ERR_NUMERIC: return "non-finite value";
    }
    return "unknown status";
}

const char *rf_last_error(void) { return last_error; }

void rf_clear_error(void) { last_error[0] = '\0'; }

rf_status rf_error(rf_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    rf_log(RF_LOG_DEBUG, "error (%s): %s", rf_status_str(status), last_error);
    return status;
}
