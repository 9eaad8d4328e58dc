#include "core/threads.h"

#include <omp.h>
#include <time.h>

void threads_set(int n) {
    if (n <= 0) n = omp_get_num_procs();
    omp_set_num_threads(n);
}

int threads_get(void) { return omp_get_max_threads(); }

double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void fair_lock_init(FairLock *l) {
    pthread_mutex_init(&l->m, NULL);
    pthread_cond_init(&l->c, NULL);
    l->next = l->serving = 0;
}

void fair_lock_destroy(FairLock *l) {
    pthread_mutex_destroy(&l->m);
    pthread_cond_destroy(&l->c);
}

void fair_lock(FairLock *l) {
    pthread_mutex_lock(&l->m);
    const unsigned long ticket = l->next++;
    while (ticket != l->serving) pthread_cond_wait(&l->c, &l->m);
    pthread_mutex_unlock(&l->m);
}

void fair_unlock(FairLock *l) {
    pthread_mutex_lock(&l->m);
    l->serving++;
    pthread_cond_broadcast(&l->c);
    pthread_mutex_unlock(&l->m);
}
