/* `reformer devices`: the device table. */
#include <stdio.h>
#include <string.h>
#include "cli.h"

static void help(void) {
    printf("usage: reformer devices [--json]\n\n"
           "Lists the cpu reference and every OpenCL device of every platform, with the\n"
           "name to pass to --device, and what each reports: vendor, driver and OpenCL C\n"
           "versions, compute units, global and local memory, largest allocation, largest\n"
           "work-group, fp16/fp64 support. The device 'auto' picks is marked '*': the first GPU, else cpu.\n");
}

int cmd_devices(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        help();
        return RF_EXIT_OK;
    }
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) json = 1;
        else {
            fprintf(stderr, "reformer devices: unknown option '%s' (see --help)\n", argv[i]);
            return RF_EXIT_USAGE;
        }
    }
    int n;
    rf_status s = rf_device_count(&n);
    if (s != RF_OK) return cli_fail("devices", s);
    /* The device "auto" opens (rf_device_open: the first GPU that is not a
     * simulator, else cpu): marked with '*'. */
    int auto_index = 0;
    rf_device *auto_dev = NULL;
    rf_device_info auto_info;
    if (rf_device_open(&auto_dev, "auto") == RF_OK && rf_device_get_info(auto_dev, &auto_info) == RF_OK) {
        for (int i = 0; i < n; i++) {
            rf_device_info in;
            if (rf_device_info_at(i, &in) == RF_OK && !strcmp(in.id, auto_info.id)) auto_index = i;
        }
        rf_device_close(auto_dev);
    } else {
        rf_clear_error();
    }
    /* The name column as wide as the longest name: a name is what users
     * tell devices apart by (PoCL's carry the CPU model), never cut. */
    int name_w = 4;
    for (int i = 0; i < n; i++) {
        rf_device_info in;
        if (rf_device_info_at(i, &in) == RF_OK && (int)strlen(in.name) > name_w) name_w = (int)strlen(in.name);
    }
    if (json) printf("[\n");
    else printf("  %-8s %-*s %-10s %5s %9s %9s %9s %6s %-5s %-5s %s\n", "id", name_w, "name", "type", "CUs", "global",
                "local", "max alloc", "max wg", "fp16", "fp64", "driver / OpenCL C");
    for (int i = 0; i < n; i++) {
        rf_device_info in;
        s = rf_device_info_at(i, &in);
        if (s != RF_OK) return cli_fail("devices", s);
        const char *type = in.kind == RF_DEVICE_CPU ? "reference" : in.is_simulator ? "simulator" : in.is_gpu ? "gpu" : "cl-cpu";
        if (json) {
            printf("  {\"id\": \"%s\", \"name\": \"%s\", \"vendor\": \"%s\", \"platform\": \"%s\", \"type\": \"%s\", "
                   "\"driver\": \"%s\", \"opencl_c\": \"%s\", \"compute_units\": %u, \"global_mem\": %llu, "
                   "\"local_mem\": %llu, \"max_alloc\": %llu, \"max_work_group\": %zu, \"fp16\": %s, \"fp64\": %s, "
                   "\"auto\": %s}%s\n",
                   in.id, in.name, in.vendor, in.platform, type, in.driver_version, in.opencl_c_version,
                   in.compute_units, (unsigned long long)in.global_mem_bytes, (unsigned long long)in.local_mem_bytes,
                   (unsigned long long)in.max_alloc_bytes, in.max_work_group_size, in.fp16 ? "true" : "false",
                   in.fp64 ? "true" : "false", i == auto_index ? "true" : "false", i + 1 < n ? "," : "");
        } else {
            printf("%c %-8s %-*s %-10s %5u %8.1fG %8.1fK %8.1fG %6zu %-5s %-5s %s%s%s\n", i == auto_index ? '*' : ' ',
                   in.id, name_w, in.name, type, in.compute_units, (double)in.global_mem_bytes / (1 << 30),
                   (double)in.local_mem_bytes / 1024, (double)in.max_alloc_bytes / (1 << 30), in.max_work_group_size,
                   in.fp16 ? "yes" : "no", in.fp64 ? "yes" : "no", in.driver_version,
                   in.opencl_c_version[0] ? " / " : "", in.opencl_c_version);
        }
    }
    if (json) printf("]\n");
    else if (!auto_index)
        printf("auto: cpu, as no GPU is listed: the cpu backend trains and infers faster than an OpenCL\n"
               "CPU device on the same cores (measured: README \"Speed\"); name cl:P:D to use one.\n");
    return RF_EXIT_OK;
}
