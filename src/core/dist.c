#include "core/dist.h"

#include <mpi.h>
#include <stdlib.h>
#include <string.h>

void dist_init(Dist *d) {
    memset(d, 0, sizeof *d);
    d->size = 1;
    const char *ws = getenv("OMPI_COMM_WORLD_SIZE");
    if (!ws || atoi(ws) <= 1) return;
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited) MPI_Init(NULL, NULL);
    MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &d->size);
    d->mpi = 1;
}

void dist_finalize(Dist *d) {
    if (d->mpi) MPI_Finalize();
    d->mpi = 0;
}

void dist_allreduce_sum(const Dist *d, float *x, long n) {
    if (!d || !d->mpi) return;
    /* MPI counts are int: reduce in chunks */
    for (long off = 0; off < n; off += 1L << 28) {
        int cnt = (int)(n - off < (1L << 28) ? n - off : (1L << 28));
        MPI_Allreduce(MPI_IN_PLACE, x + off, cnt, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    }
}

void dist_allgather(const Dist *d, const float *local, long n, float *all) {
    if (!d || !d->mpi) {
        memcpy(all, local, sizeof(float) * (size_t)n);
        return;
    }
    MPI_Allgather(local, (int)n, MPI_FLOAT, all, (int)n, MPI_FLOAT, MPI_COMM_WORLD);
}

void dist_barrier(const Dist *d) {
    if (d && d->mpi) MPI_Barrier(MPI_COMM_WORLD);
}

void dist_allreduce_sum_double(const Dist *d, double *x, long n) {
    if (!d || !d->mpi) return;
    MPI_Allreduce(MPI_IN_PLACE, x, (int)n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}
