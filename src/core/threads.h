/* Thread count for OpenMP loops and oneDNN (both use the same OpenMP runtime). */
#ifndef FORGET_THREADS_H
#define FORGET_THREADS_H

/* n <= 0 means all cores. */
void threads_set(int n);
int threads_get(void);
/* Monotonic wall clock in seconds. */
double now_seconds(void);

#endif
