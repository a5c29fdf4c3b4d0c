/* Emulated vendor limits: RF_CL_LIMITS lowers the device limits every
 * kernel plans against (work-group size, local memory, the preferred
 * work-group multiple), so PoCL or oclgrind can show that the kernels still
 * fit a typical GPU. rf_cl_group_size and the attention tile pickers read
 * them from dev->info, so this is the one place they are applied.
 *
 *   RF_CL_LIMITS=nvidia                          a named profile
 *   RF_CL_LIMITS=wg:256,local:32768,multiple:64  explicit values
 *   RF_CL_LIMITS=amd,wg:128                      a profile, then overrides
 *
 * A limit never raises what the device reports. */
#include <stdlib.h>
#include <string.h>
#include "device/opencl/cl_backend.h"

typedef struct limits_profile {
    const char *name;
    size_t wg, local, multiple;
} limits_profile;

/* Typical GPUs: AMD GCN/RDNA (wave 64, 64 KiB LDS, work-group 256), NVIDIA
 * (warp 32, 48 KiB shared memory without opt-in, 1,024), Intel Xe (sub-group
 * 16, 64 KiB SLM, 256 on most parts), and `min`: the smallest of each,
 * the profile a test plans every kernel against. */
static const limits_profile PROFILES[] = {
    {"amd", 256, 65536, 64},
    {"nvidia", 1024, 49152, 32},
    {"intel", 256, 65536, 16},
    {"min", 256, 32768, 16},
};

const char *rf_cl_limits_profiles(void) { return "amd, nvidia, intel, min"; }

static rf_status parse_token(const char *tok, size_t *wg, size_t *local, size_t *multiple) {
    for (size_t i = 0; i < sizeof PROFILES / sizeof PROFILES[0]; i++)
        if (!strcmp(tok, PROFILES[i].name)) {
            *wg = PROFILES[i].wg, *local = PROFILES[i].local, *multiple = PROFILES[i].multiple;
            return RF_OK;
        }
    const char *colon = strchr(tok, ':');
    char *end = NULL;
    unsigned long long v = colon ? strtoull(colon + 1, &end, 10) : 0;
    if (colon && end && end != colon + 1 && !*end && v > 0) {
        size_t klen = (size_t)(colon - tok);
        if (klen == 2 && !strncmp(tok, "wg", 2)) *wg = (size_t)v;
        else if (klen == 5 && !strncmp(tok, "local", 5)) *local = (size_t)v;
        else if (klen == 8 && !strncmp(tok, "multiple", 8)) *multiple = (size_t)v;
        else colon = NULL;
    } else {
        colon = NULL;
    }
    if (!colon)
        return rf_error(RF_ERR_INVALID_ARG,
                        "RF_CL_LIMITS: '%s' is neither a profile (%s) nor wg:N, local:BYTES or multiple:N", tok,
                        rf_cl_limits_profiles());
    return RF_OK;
}

rf_status rf_cl_limits_apply(rf_device_info *info) {
    size_t one = 1, *multiple = &one;
    const char *spec = getenv("RF_CL_LIMITS");
    if (!spec || !*spec) return RF_OK;
    size_t wg = 0, local = 0;
    char buf[256];
    if (strlen(spec) >= sizeof buf) return rf_error(RF_ERR_INVALID_ARG, "RF_CL_LIMITS is too long");
    strcpy(buf, spec);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
        RF_TRY(parse_token(tok, &wg, &local, multiple));
    /* Work-groups are powers of two (rf_cl_group_size), so one at least as
     * wide as a power-of-two multiple is a multiple of it: the multiple
     * only has to be a power of two no wider than the work-group limit. */
    if (*multiple & (*multiple - 1))
        return rf_error(RF_ERR_INVALID_ARG, "RF_CL_LIMITS: multiple %zu is not a power of two", *multiple);
    if (wg && *multiple > wg)
        return rf_error(RF_ERR_INVALID_ARG, "RF_CL_LIMITS: multiple %zu is wider than wg %zu", *multiple, wg);
    if (wg && wg < info->max_work_group_size) info->max_work_group_size = wg;
    if (local && local < info->local_mem_bytes) info->local_mem_bytes = local;
    return RF_OK;
}
