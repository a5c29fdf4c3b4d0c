/* Data-parallel training over MPI: the ranks, each rank's device, and the one
 * collective of a step (an in-place sum of the fused gradient vector on the
 * host). The library never sees MPI: it hands out the gradients as one vector
 * and takes them back (rf_model_grads_download / _upload, model.h). */
#include "train_dist.h"
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef RF_HAVE_MPI
#include <mpi.h>
#endif

/* The launcher's world size from the environment (Open MPI, or PMI for
 * MPICH, Intel MPI and Slurm), or 0 when not started by one. */
static long launcher_size(void) {
    const char *v = getenv("OMPI_COMM_WORLD_SIZE");
    if (!v) v = getenv("PMI_SIZE");
    return v ? strtol(v, NULL, 10) : 0;
}

int dist_init(dist *d) {
    *d = (dist){.rank = 0, .size = 1, .local_rank = 0, .local_size = 1, .mpi = 0};
    long n = launcher_size();
#ifdef RF_HAVE_MPI
    if (n < 1) return 1;
    int provided;
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_SINGLE, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "reformer train: MPI_Init failed\n");
        return 0;
    }
    d->mpi = 1;
    /* Errors in a collective return here (and are turned into an abort that
     * names the rank) instead of MPI's default of ending silently. */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &d->size);
    MPI_Comm local;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, d->rank, MPI_INFO_NULL, &local);
    MPI_Comm_rank(local, &d->local_rank);
    MPI_Comm_size(local, &d->local_size);
    MPI_Comm_free(&local);
    return 1;
#else
    if (n > 1) {
        fprintf(stderr, "reformer train: started as one of %ld MPI processes, but this reformer was built without MPI "
                        "(install libopenmpi-dev and rebuild: CMake finds it); each process would train alone\n", n);
        return 0;
    }
    return 1;
#endif
}

void dist_finalize(const dist *d) {
#ifdef RF_HAVE_MPI
    if (d->mpi) MPI_Finalize();
#else
    (void)d;
#endif
}

int dist_device(const dist *d, const char *device, char *out, size_t n) {
    if (!device) device = getenv("RF_DEVICE");
    if (!device || !*device) device = "auto";
    if (strchr(device, ',')) {
        /* A list: the local rank's entry (the same list serves every machine). */
        const char *p = device;
        for (int i = 0; i < d->local_rank && p; i++) p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL;
        if (!p) {
            fprintf(stderr, "reformer train: rank %d: --device '%s' lists fewer devices than the %d ranks on this "
                            "machine\n", d->rank, device, d->local_size);
            return 0;
        }
        snprintf(out, n, "%.*s", (int)strcspn(p, ","), p);
        return 1;
    }
    const char *rule = strstr(device, "local_rank");
    if (rule) {
        snprintf(out, n, "%.*s%d%s", (int)(rule - device), device, d->local_rank, rule + strlen("local_rank"));
        return 1;
    }
    if (d->local_size > 1 && strcmp(device, "cpu")) {
        fprintf(stderr, "reformer train: rank %d: %d ranks on this machine would share the device '%s'; give one "
                        "device per rank (e.g. --device cl:0:local_rank, or a list such as cl:0:0,cl:0:1), or cpu\n",
                d->rank, d->local_size, device);
        return 0;
    }
    snprintf(out, n, "%s", device);
    return 1;
}

int dist_all_ok(const dist *d, int ok) {
#ifdef RF_HAVE_MPI
    if (d->mpi && MPI_Allreduce(MPI_IN_PLACE, &ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD) != MPI_SUCCESS) {
        dist_abort(d, "MPI_Allreduce failed while the ranks checked their set-up");
        return 0;
    }
#else
    (void)d;
#endif
    return ok;
}

int dist_sum(const dist *d, float *buf, size_t n) {
#ifdef RF_HAVE_MPI
    /* One call per step; only a model of more than 2^31 floats needs pieces. */
    for (size_t at = 0; d->mpi && at < n;) {
        int part = n - at > INT_MAX ? INT_MAX : (int)(n - at);
        if (MPI_Allreduce(MPI_IN_PLACE, buf + at, part, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD) != MPI_SUCCESS) return 0;
        at += (size_t)part;
    }
#else
    (void)d, (void)buf, (void)n;
#endif
    return 1;
}

void dist_abort(const dist *d, const char *why) {
    fprintf(stderr, "reformer train: rank %d of %d: %s; stopping every rank\n", d->rank, d->size, why);
    fflush(stderr);
#ifdef RF_HAVE_MPI
    if (d->mpi) MPI_Abort(MPI_COMM_WORLD, 1);
#endif
}
