/* Data-parallel training over MPI (OpenMPI). A process started by mpirun joins
 * the world; one started alone runs as rank 0 of 1 without touching MPI, so
 * every command works the same with or without mpirun. */
#ifndef FORGET_DIST_H
#define FORGET_DIST_H

typedef struct {
    int rank, size;
    int mpi; /* 1 when MPI_Init was called */
} Dist;

/* Joins the MPI world when launched by mpirun (OMPI_COMM_WORLD_SIZE set), else rank 0 of 1. */
void dist_init(Dist *d);
void dist_finalize(Dist *d);
/* In-place sum over ranks. */
void dist_allreduce_sum(const Dist *d, float *x, long n);
/* Every rank contributes n floats; all[] receives size * n, rank order. */
void dist_allgather(const Dist *d, const float *local, long n, float *all);
/* In-place sum of doubles over ranks (n < 2^31): exact where one rank holds each value and the
 * others 0, which is how populations are shared. */
void dist_allreduce_sum_double(const Dist *d, double *x, long n);
void dist_barrier(const Dist *d);

#endif
