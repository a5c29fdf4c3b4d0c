/* `reformer bench dp`: data-parallel training on this machine. It runs the
 * real thing — `mpirun -np N reformer train` on the copy task, cpu device,
 * one core per rank (OPENBLAS_NUM_THREADS=1, --bind-to core) — for N = 1
 * and 2, and reads back the tokens/s and the all-reduce's share of the wall
 * time that train prints. Then the same step on paper for the HF default
 * model (6 layers, D 256) on 8 GPUs over 100 Gb/s: ring all-reduce moves
 * 2(N−1)/N × 4·parameters bytes per rank and step. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "bench.h"
#include "reformer/model.h"

#define DP_ARGS "train --task copy --device cpu --batch 16 --length 64 --steps 40 --eval-every 1000 --eval-batches 1"

/* One run: tokens/s of the last step line and the all-reduce share (%). */
static int dp_run(const char *mpiexec, const char *self, int ranks, double *tps, double *share) {
    char cmd[4096], line[1024];
    snprintf(cmd, sizeof cmd,
             "OPENBLAS_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 timeout -k 5 600 '%s' "
             "--oversubscribe --bind-to core --mca btl self,vader --mca btl_vader_single_copy_mechanism none -np %d "
             "'%s' " DP_ARGS " 2>&1", mpiexec, ranks, self);
    FILE *p = popen(cmd, "r");
    if (!p) return 0;
    *tps = 0, *share = 0;
    while (fgets(line, sizeof line, p)) {
        const char *at = strstr(line, "step ");
        double a, b, pct;
        long long step;
        if (at && sscanf(at, "step %lld: train loss %*f, held-out loss %*f, accuracy %*f, %lf tokens/s", &step,
                         tps) == 2) continue;
        if (sscanf(line, "data-parallel: all-reduce %lf s of %lf s (%lf%%)", &a, &b, &pct) == 3) *share = pct;
    }
    return pclose(p) == 0 && *tps > 0;
}

int bench_dp(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        printf("usage: reformer bench dp\n\n"
               "Data-parallel training with 1 and 2 MPI ranks on this machine (mpirun from\n"
               "$RF_MPIEXEC, else mpirun on PATH): `reformer train` on the copy task\n"
               "(" DP_ARGS "), cpu device, one core per rank; tokens/s of\n"
               "all ranks and the all-reduce's share of the wall time. Then the all-reduce of the\n"
               "HF default model (6 layers, D 256) on 8 GPUs over 100 Gb/s, on paper.\n");
        return RF_EXIT_OK;
    }
    if (argc > 1) return bench_usage_error("dp", argv[1]);
    const char *mpiexec = getenv("RF_MPIEXEC");
    if (!mpiexec || !*mpiexec) mpiexec = "mpirun";
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        fprintf(stderr, "reformer bench dp: cannot find this program's path (/proc/self/exe)\n");
        return RF_EXIT_FAIL;
    }
    self[n] = 0;
    printf("data-parallel: reformer " DP_ARGS ", 1 core per rank\n");
    printf("  %5s %12s %10s %18s\n", "ranks", "tokens/s", "speed-up", "all-reduce share");
    double base = 0;
    for (int ranks = 1; ranks <= 2; ranks++) {
        double tps, share;
        if (!dp_run(mpiexec, self, ranks, &tps, &share)) {
            fprintf(stderr, "reformer bench dp: mpirun -np %d failed (is the tool built with MPI, and %s there?)\n",
                    ranks, mpiexec);
            return RF_EXIT_FAIL;
        }
        if (ranks == 1) base = tps;
        printf("  %5d %12.0f %9.2fx %17.1f%%\n", ranks, tps, tps / base, share);
    }
    /* On paper: the HF default model's gradient on a ring of 8. */
    rf_config c;
    rf_device *dev = NULL;
    rf_model *m = NULL;
    size_t params = 0;
    rf_status s = rf_config_default(&c);
    if (s == RF_OK) s = rf_device_open(&dev, "cpu");
    if (s == RF_OK) s = rf_model_create(&m, dev, &c, 1);
    if (s == RF_OK) s = rf_model_grad_count(m, &params);
    rf_model_free(m);
    rf_device_close(dev);
    if (s) return cli_fail("bench dp", s);
    double bytes = 4.0 * (double)params, ring = 2.0 * 7 / 8 * bytes, bw = 100e9 / 8;
    printf("on paper: HF default model (6 layers, D 256): %zu parameters, %.1f MB of gradients per step;\n"
           "  ring all-reduce over 8 GPUs at 100 Gb/s: 2(N-1)/N x %.1f MB = %.1f MB per rank, %.2f ms per step\n",
           params, bytes / 1e6, bytes / 1e6, ring / 1e6, 1e3 * ring / bw);
    return RF_EXIT_OK;
}
