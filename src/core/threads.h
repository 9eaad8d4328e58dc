/* Thread count for OpenMP loops and oneDNN (both use the same OpenMP runtime). */
#ifndef FORGET_THREADS_H
#define FORGET_THREADS_H

/* n <= 0 means all cores. */
void threads_set(int n);
int threads_get(void);
/* Monotonic wall clock in seconds. */
double now_seconds(void);

/* A first-come first-served lock (a ticket lock): whoever waits longest goes next. A server
 * takes it around each slice of one request's work, so a long request interleaves with short
 * ones instead of holding the model until it is done (pthread mutexes promise no order). */
#include <pthread.h>
typedef struct {
    pthread_mutex_t m;
    pthread_cond_t c;
    unsigned long next, serving;
} FairLock;
void fair_lock_init(FairLock *l);
void fair_lock_destroy(FairLock *l);
void fair_lock(FairLock *l);
void fair_unlock(FairLock *l);

#endif
