/* The forget binary as tests run it ($FORGET_BIN, default bin/forget). */
#ifndef FORGET_TEST_CLI_RUN_H
#define FORGET_TEST_CLI_RUN_H

const char *bin(void);
/* Runs `forget ARGS` through the shell; returns the exit code, output (stdout and stderr) in *out
 * (malloc'd) when out is set. */
int run(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
