/* libFuzzer target for the config.json reader (tools/fuzz.sh builds and runs
 * it). Any input must either be refused with a status or give a config that
 * validates, and whose saved JSON reads back to the same JSON. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "reformer/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    rf_config cfg, again;
    if (rf_config_parse_json(&cfg, (const char *)data, size) != RF_OK) return 0;
    if (rf_config_validate(&cfg) != RF_OK) abort();
    char *first, *second;
    if (rf_config_to_json(&cfg, &first) != RF_OK) abort();
    if (rf_config_parse_json(&again, first, strlen(first)) != RF_OK) abort();
    if (rf_config_to_json(&again, &second) != RF_OK) abort();
    if (strcmp(first, second) != 0) abort();
    int factors[2], n;
    if (rf_config_num_buckets(&cfg, 1 + (int64_t)size, factors, &n) != RF_OK) abort();
    free(first);
    free(second);
    return 0;
}
