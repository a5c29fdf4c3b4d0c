/* The `reformer` command as a user runs it: help texts, the device table,
 * exit statuses, and `verify` catching wrong devices. */
#include "harness.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char buf[1 << 16];

static void help_explains_itself(void **state) {
    assert_int_equal(th_run_cli(NULL, "--help", buf, sizeof buf), 0);
    assert_non_null(strstr(buf, "devices"));
    assert_non_null(strstr(buf, "verify"));
    assert_int_equal(th_run_cli(NULL, "devices --help", buf, sizeof buf), 0);
    assert_non_null(strstr(buf, "usage: reformer devices"));
    assert_int_equal(th_run_cli(NULL, "verify --help", buf, sizeof buf), 0);
    assert_non_null(strstr(buf, "--tolerance-scale"));
    assert_int_equal(th_run_cli(NULL, "no-such-command", buf, sizeof buf), 2);
    assert_non_null(strstr(buf, "unknown command 'no-such-command'"));
    assert_int_equal(th_run_cli(NULL, "devices --bogus", buf, sizeof buf), 2);
    assert_int_equal(th_run_cli(NULL, "", buf, sizeof buf), 2);
}

static void devices_lists_cpu_and_opencl(void **state) {
    assert_int_equal(th_run_cli(NULL, "devices", buf, sizeof buf), 0);
    assert_non_null(strstr(buf, "cpu"));
    rf_device *cl = th_cl();
    if (!cl) skip();
    rf_device_info info;
    TH_OK(rf_device_get_info(cl, &info));
    assert_non_null(strstr(buf, info.id));
    assert_non_null(strstr(buf, info.name));
    rf_device_close(cl);
    assert_int_equal(th_run_cli(NULL, "devices --json", buf, sizeof buf), 0);
    assert_non_null(strstr(buf, "\"id\": \"cl:0:0\""));
}

static void verify_passes_and_catches_wrong_devices(void **state) {
    rf_device *cl = th_cl();
    if (!cl) skip();
    rf_device_close(cl);
    assert_int_equal(th_run_cli(NULL, "verify --device cl:0:0", buf, sizeof buf), 0);
    assert_non_null(strstr(buf, "PASS"));
    assert_null(strstr(buf, "FAIL"));
    /* Tolerance 0: the device's different rounding must be reported. */
    assert_int_equal(th_run_cli(NULL, "verify --device cl:0:0 --tolerance-scale 0", buf, sizeof buf), 1);
    assert_non_null(strstr(buf, "FAIL"));
    assert_int_equal(th_run_cli(NULL, "verify --grid medium", buf, sizeof buf), 2);
    assert_int_equal(th_run_cli(NULL, "verify --device nowhere", buf, sizeof buf), 1);
    assert_non_null(strstr(buf, "unknown device 'nowhere'"));
}

/* A kernel that writes one element past its output: the sentinels see it. */
static void verify_catches_out_of_bounds_writes(void **state) {
    rf_device *cl = th_cl();
    if (!cl) skip();
    rf_device_close(cl);
    char dir[256], path[400], env[600];
    th_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/elementwise.cl", dir);
    FILE *f = fopen(path, "w");
    fputs("__kernel void axpby(__global float *out, const ulong oo, __global const float *a, const ulong ao,\n"
          "  __global const float *b, const ulong bo, const float alpha, const ulong n) {\n"
          "  size_t i = get_global_id(0); if (i < n) out[oo + i + (i == n - 1)] = a[ao + i] + alpha * b[bo + i]; }\n",
          f);
    fclose(f);
    /* Other kernels come from the real cl/ folder copied beside it; the GPU
     * shape runs axpby (the CPU shape's axpby_vec is not in the copy). */
    snprintf(env, sizeof env, "for f in '%s'/../../cl/*.cl; do [ -e \"%s/$(basename $f)\" ] || cp \"$f\" '%s'; done; RF_CL_ATTN=gpu RF_KERNEL_DIR='%s'",
             getenv("RF_TEST_DATA"), dir, dir, dir);
    assert_int_equal(th_run_cli(env, "verify --device cl:0:0", buf, sizeof buf), 1);
    assert_non_null(strstr(buf, "out-of-bounds write"));
}

/* `reformer bench`: argument handling only (timings are never asserted). */
static void bench_arguments(void **state) {
    assert_int_equal(th_run_cli(NULL, "bench --help", buf, sizeof buf), 0);
    assert_non_null(strstr(buf, "gemm"));
    assert_non_null(strstr(buf, "--profile-csv"));
    assert_int_equal(th_run_cli(NULL, "bench", buf, sizeof buf), 2);
    assert_int_equal(th_run_cli(NULL, "bench nothing", buf, sizeof buf), 2);
    assert_non_null(strstr(buf, "unknown benchmark 'nothing'"));
    assert_int_equal(th_run_cli(NULL, "bench gemm --bogus", buf, sizeof buf), 2);
    assert_non_null(strstr(buf, "'--bogus'"));
    assert_int_equal(th_run_cli(NULL, "bench attention --runs 3", buf, sizeof buf), 2);
    assert_non_null(strstr(buf, "--runs: 3 is out of range [5, 64]"));
    assert_int_equal(th_run_cli(NULL, "bench gemm --sizes 4x4", buf, sizeof buf), 2);
    assert_int_equal(th_run_cli(NULL, "bench model --length 100", buf, sizeof buf), 2);
    char dir[256], args[700];
    th_tmpdir(dir, sizeof dir);
    snprintf(args, sizeof args, "bench gemm --device cpu --sizes 8,4x8x2 --csv '%s/g.csv' --json '%s/g.json'", dir,
             dir);
    assert_int_equal(th_run_cli(NULL, args, buf, sizeof buf), 0);
    assert_non_null(strstr(buf, "m=4 n=8 k=2"));
    snprintf(args, sizeof args, "%s/g.csv", dir);
    FILE *f = fopen(args, "r");
    assert_non_null(f);
    char line[256] = "";
    assert_non_null(fgets(line, sizeof line, f));
    fclose(f);
    assert_string_equal(line, "bench,device,op,shape,batch,length,tokens,time_ms,tokens_per_s,gflops,base_bytes,"
                              "peak_bytes,rss_bytes\n");
    /* bench model --config: a case per process, with its peak RSS; HF's
     * side is skipped with a note when it cannot run (no such python). */
    const char *data = getenv("RF_TEST_DATA");
    snprintf(args, sizeof args, "bench model --config '%s/hf_causal/config.json' --device cpu --against-hf", data);
    assert_int_equal(th_run_cli("RF_PYTHON=/no/such/python", args, buf, sizeof buf), 0);
    assert_non_null(strstr(buf, "training   B=1 L=64"));
    assert_non_null(strstr(buf, "forward    B=1 L=64"));
    assert_non_null(strstr(buf, "note: --against-hf skipped"));
    const char *row = strstr(buf, "cpu      forward");
    assert_non_null(row);
    double ms = 0, tok = 0, peak = 0, rss = 0;
    assert_int_equal(sscanf(row + 49, "%lf %lf - %lf %lf", &ms, &tok, &peak, &rss), 4);
    assert_true(rss > peak && rss > 1); /* the process, not only the device bytes */
    snprintf(args, sizeof args, "bench model --config '%s/hf_causal/config.json' --lengths 0", data);
    assert_int_equal(th_run_cli(NULL, args, buf, sizeof buf), 2);
    assert_int_equal(th_run_cli(NULL, "bench model --config /no/such/config.json", buf, sizeof buf), 1);
}

/* The model commands end to end on small inputs: sample (a random model and
 * an HF checkpoint), eval, and train with gradient accumulation. */
static void model_commands_run(void **state) {
    char args[1024];
    const char *data = getenv("RF_TEST_DATA");
    assert_int_equal(th_run_cli(NULL, "sample --random --device cpu --prompt hi --length 3 --seed 4", buf, sizeof buf), 0);
    assert_true(!strncmp(buf, "hi", 2));
    snprintf(args, sizeof args, "sample --model '%s/hf_causal' --device cpu --length 4 --temperature 0.7 --top-k 5", data);
    assert_int_equal(th_run_cli(NULL, args, buf, sizeof buf), 0);
    assert_non_null(strchr(buf, '['));
    snprintf(args, sizeof args, "eval --model '%s/hf_causal' --text '%s/hf_causal/config.json' --device cpu", data, data);
    assert_int_equal(th_run_cli(NULL, args, buf, sizeof buf), 0);
    assert_non_null(strstr(buf, "bits per byte"));
    assert_int_equal(th_run_cli(NULL,
                                "train --task copy --device cpu --steps 4 --eval-every 2 --accumulate 2 --batch 2 "
                                "--length 32 --chunk 8 --hidden 16 --eval-hashes 1,4",
                                buf, sizeof buf),
                     0);
    assert_non_null(strstr(buf, "evaluated with 4 hash rounds"));
    assert_non_null(strstr(buf, "held-out accuracy: "));
    /* Fine-tune an HF checkpoint. */
    snprintf(args, sizeof args,
             "train --task copy --init '%s/hf_causal' --device cpu --steps 2 --eval-every 2 --length 64 --batch 2", data);
    assert_int_equal(th_run_cli(NULL, args, buf, sizeof buf), 0);
    assert_non_null(strstr(buf, "4 layers"));
    assert_int_equal(th_run_cli(NULL, "train --task copy --init a --config b", buf, sizeof buf), 2);
    assert_int_equal(th_run_cli(NULL, "sample --random --length 0", buf, sizeof buf), 2);
    assert_int_equal(th_run_cli(NULL, "train --task copy --eval-hashes 0", buf, sizeof buf), 2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(help_explains_itself),
        cmocka_unit_test(devices_lists_cpu_and_opencl),
        cmocka_unit_test(verify_passes_and_catches_wrong_devices),
        cmocka_unit_test(verify_catches_out_of_bounds_writes),
        cmocka_unit_test(model_commands_run),
        cmocka_unit_test(bench_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
