/* Internal: tile parameters of the OpenCL kernels, and the values `reformer
 * tune` found best for a device (docs/tuning.md).
 *
 * A kernel that has a tunable parameter (a tile size, a group width) reads it
 * with rf_cl_tuned(dev, "kernel.param", fallback): the value stored for this
 * device and driver by `reformer tune` when there is one, else the documented
 * default `fallback`. The caller still checks the value against the device's
 * limits (a stored value that no longer fits falls back). Every key, with
 * the values the tuner tries, is listed once in rf_cl_tunables (cl_tune.c).
 *
 * Where the values come from: the table file of this device and driver in
 * the kernel cache's folder (read once when the device opens), and in-memory
 * overrides set with rf_cl_tune_set (the tuner trying a candidate, tests).
 * A value changes the kernel's -D build options, so its programs have their
 * own kernel cache entries. This header needs no OpenCL header: the CLI's
 * `reformer tune` includes it. */
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

/* NULL when the kernel of `key` runs on dev; else why it does not (the
 * tuner skips the key with that note): the chunk attention kernels' tiles
 * (local, full, LSH) on a device that runs their CPU shape. */
const char *rf_cl_tune_idle(rf_device *dev, const char *key);

/* ---- the values a device holds (kept in its rf_cl_context) ---------------- */

#define RF_CL_TUNE_MAX_VALUES 64
#define RF_CL_TUNE_KEY_MAX 64

typedef struct rf_cl_tune_value {
    char key[RF_CL_TUNE_KEY_MAX];
    int value;
    bool forced;     /* set by rf_cl_tune_set, not read from the table file */
} rf_cl_tune_value;

typedef struct rf_cl_tuning {
    int count;
    rf_cl_tune_value values[RF_CL_TUNE_MAX_VALUES];
} rf_cl_tuning;

/* The table file of this device and driver: <cache folder>/tune-<key>.json,
 * the key a hash of (device name, vendor, driver, platform and OpenCL C
 * versions), as the kernel cache's. */
void rf_cl_tune_path(const rf_device *dev, char *out, size_t n);

/* Read the table file into dev's values (on open; replaces what it holds).
 * A missing file is no table; a malformed one, one written for another
 * device or driver, or one holding values that are not integers ≥ 1 is
 * ignored whole with a warning (RF_LOG=warn). Never fails. */
rf_status rf_cl_tune_load(rf_device *dev);

/* Write every value dev holds (stored and forced) as its table file,
 * atomically, creating the cache folder; the path written to `path`. */
rf_status rf_cl_tune_store(rf_device *dev, char *path, size_t n);

/* Force `key` to `value` in memory (the tuner's candidate; tests), or with
 * value 0 remove it, so rf_cl_tuned returns the documented default. The key
 * must be in rf_cl_tunables. RF_ERR_UNSUPPORTED on a non-OpenCL device. */
rf_status rf_cl_tune_set(rf_device *dev, const char *key, int value);

/* The table row of `key`, or NULL. */
const rf_cl_tunable *rf_cl_tunable_find(const char *key);

/* A caller whose tuned `value` of `key` does not fit the device's limits
 * calls this before falling back: a forced value (the tuner trying a
 * candidate) is then RF_ERR_UNSUPPORTED, so the tuner skips the candidate
 * with a note instead of timing the fallback under the candidate's name; a
 * stored one is logged and RF_OK (the caller uses its fallback), as is the
 * default (no value held). */
rf_status rf_cl_tuned_unfit(rf_device *dev, const char *key, int value, const char *why);

#endif
