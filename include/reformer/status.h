/* reformer-cl core: status codes and the last-error message.
 *
 * Every public function returns an rf_status. On failure the library also
 * records a one-line, human-readable message for the calling thread (what was
 * wrong, naming the argument, the values, the op and the OpenCL error), which
 * rf_last_error() returns until the next failure on that thread. */
#ifndef REFORMER_STATUS_H
#define REFORMER_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum rf_status {
    RF_OK = 0,
    RF_ERR_INVALID_ARG,   /* a null pointer, a bad size, mismatched shapes */
    RF_ERR_OUT_OF_MEMORY, /* host or device allocation failed or over a cap */
    RF_ERR_DEVICE,        /* the OpenCL runtime or CLBlast reported an error */
    RF_ERR_BUILD,         /* a kernel failed to compile (message has the log) */
    RF_ERR_NOT_FOUND,     /* unknown device, missing file or tensor */
    RF_ERR_IO,            /* a file could not be read or written */
    RF_ERR_FORMAT,        /* a file is malformed or disagrees with the config */
    RF_ERR_UNSUPPORTED,   /* a valid request this build or device cannot do */
    RF_ERR_NUMERIC        /* a non-finite loss or gradient */
} rf_status;

/* A short constant name for a status ("invalid argument", ...). */
const char *rf_status_str(rf_status status);

/* The detailed message of the calling thread's last failure ("" if none). */
const char *rf_last_error(void);

/* Forget the calling thread's last failure message. */
void rf_clear_error(void);

#ifdef __cplusplus
}
#endif
#endif
