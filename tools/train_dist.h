/* Data-parallel training over MPI (train_dist.c): the tool's only use of MPI,
 * so the library stays free of it. Without MPI at build time these still
 * exist: one process, rank 0 of 1, and a launch by mpirun is refused. */
#ifndef RF_TRAIN_DIST_H
#define RF_TRAIN_DIST_H

#include <stddef.h>

typedef struct dist {
    int rank, size;             /* MPI_COMM_WORLD */
    int local_rank, local_size; /* the ranks on this machine (MPI_COMM_TYPE_SHARED) */
    int mpi;                    /* MPI_Init was called */
} dist;

/* One process unless started by mpirun (OMPI_COMM_WORLD_SIZE or PMI_SIZE in
 * the environment): then MPI_Init and the ranks. Returns 0 after printing why
 * (e.g. a build without MPI started by mpirun with more than one process). */
int dist_init(dist *d);
void dist_finalize(const dist *d);

/* The device of this rank from --device: "a,b,c" is a list indexed by the
 * local rank; "local_rank" in a name is replaced by it (cl:0:local_rank: one
 * rank per device of platform 0). A single other name opened by several ranks
 * of one machine is refused (they would share a device) unless it is "cpu".
 * Writes into out (n bytes); returns 0 after printing why. */
int dist_device(const dist *d, const char *device, char *out, size_t n);

/* 1 when every rank passes ok != 0 (each rank says why it did not). */
int dist_all_ok(const dist *d, int ok);

/* buf[0 .. n) ← its sum over the ranks, in place (one MPI_Allreduce). */
int dist_sum(const dist *d, float *buf, size_t n);

/* A rank that cannot go on: print "rank R of N: why" and end every rank
 * (MPI_Abort), so that none waits in a collective forever. */
void dist_abort(const dist *d, const char *why);

#endif
