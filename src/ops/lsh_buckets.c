/* The LSH bucket-count rule (§3), apart from the attention itself:
 * it needs no device, so the config code (rf_config_num_buckets) and the
 * device-free fuzz targets of tools/fuzz.sh link it alone. */
#include <math.h>
#include "core/core.h"
#include "reformer/ops.h"

rf_status rf_lsh_auto_buckets(int factors[2], int64_t seq_len, int chunk_len, int64_t max_position) {
    if (!factors || seq_len <= 0 || chunk_len <= 0 || max_position < 0)
        return rf_error(RF_ERR_INVALID_ARG, "rf_lsh_auto_buckets: need factors, L > 0, m > 0, max_position ≥ 0");
    if (max_position == 0) max_position = seq_len;
    /* As HF's _set_num_buckets: p = bit_length(2·⌊L/m⌋) − 1. */
    int64_t x = 2 * (seq_len / chunk_len);
    int p = 0;
    while (x >> (p + 1)) p++;
    if (p < 1) p = 1; /* L < m never hashes; keep nb ≥ 2 all the same */
    if (p > 30) return rf_error(RF_ERR_INVALID_ARG, "rf_lsh_auto_buckets: L = %lld gives too many buckets", (long long)seq_len);
    int64_t root = (int64_t)sqrt((double)(max_position / chunk_len));
    while (root * root > max_position / chunk_len) root--;
    while ((root + 1) * (root + 1) <= max_position / chunk_len) root++;
    int64_t limit = 2 * (root > chunk_len ? root : chunk_len);
    if ((1ll << p) > limit) {
        factors[0] = 1 << (p / 2);
        factors[1] = 1 << (p - p / 2);
    } else {
        factors[0] = 1 << p;
        factors[1] = 0;
    }
    return RF_OK;
}
