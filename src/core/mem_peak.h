/* The peak resident memory of this process since the last reset, so that one process can report
 * the peak of each phase it runs (Linux: VmHWM of /proc/self/status, reset to the current size by
 * writing 5 to /proc/self/clear_refs). */
#ifndef FORGET_CORE_MEM_PEAK_H
#define FORGET_CORE_MEM_PEAK_H

void mem_peak_reset(void);
/* MiB; -1 where the kernel does not say. */
double mem_peak_mib(void);

#endif
