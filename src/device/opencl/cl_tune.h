/* Internal: tile parameters of the OpenCL kernels, and the values `reformer
 * tune` found best for a device (docs/tuning.md).
 *
 * A kernel that has a tunable parameter (a tile size, a group width) reads it
 * with rf_cl_tuned(dev, "kernel.param", fallback): the value stored for this
 * device and driver by `reformer tune` when there is one, else the documented
 * default `fallback`. The caller still checks the value against the device's
 * limits (a stored value that no longer fits falls back). Every key, with
 * the values the tuner tries, is listed once in rf_cl_tunables (cl_tune.c). */
#ifndef RF_CL_TUNE_H
#define RF_CL_TUNE_H

#include "device/device_impl.h"

#define RF_CL_TUNE_MAX_CANDIDATES 8

typedef struct rf_cl_tunable {
    const char *key;          /* "lsh_attend.tile" */
    int ncandidates;
    int candidates[RF_CL_TUNE_MAX_CANDIDATES];
} rf_cl_tunable;

extern const rf_cl_tunable rf_cl_tunables[];
extern const int rf_cl_ntunables;

int rf_cl_tuned(rf_device *dev, const char *key, int fallback);

#endif
