/* Shared pieces of the `forget` subcommands: the command table, option parsing
 * with clear errors, and loaders that every command uses the same way. */
#ifndef FORGET_CLI_H
#define FORGET_CLI_H

#include <stdio.h>

#include "cli/opts.h"
#include "models/clip.h"

typedef struct Command {
    const char *name;
    const char *summary;
    const char *help; /* full usage text */
    int (*run)(int argc, char **argv);
} Command;

const Command *cli_find(const char *name);
void cli_list(FILE *f);

/* Exit codes: 0 ok, 1 the work failed (bad file, ...), 2 bad command line. */
enum { EXIT_WORK = 1, EXIT_USAGE = 2 };

/* Prints "forget CMD: message" to stderr and returns code. */
int cli_error(const char *cmd, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Loads a model, printing the error; 0 on success. */
int cli_load_model(const char *cmd, const char *path, ClipModel *m, int act_override);
/* The same, and with check set, every weight verified finite (the first bad tensor named); the
 * weight products then run in `precision` (a Precision: --precision). */
int cli_load_model_checked(const char *cmd, const char *path, ClipModel *m, int act_override, int check,
                           int precision);
/* Median of v[n] (sorts v). */
double cli_median(double *v, int n);
/* forget bench blackbox (cmd_bench_methods.c), dispatched from forget bench. */
int bench_blackbox(int argc, char **argv);
/* forget bench debias (cmd_bench_methods.c). */
int bench_debias(int argc, char **argv);
/* forget bench resnet (cmd_bench_resnet.c). */
int bench_resnet(int argc, char **argv);
/* The running forget binary's path (/proc/self/exe) into buf, for experiments that run their steps
 * as child processes; -1 when it cannot be read or does not fit. */
int cli_self_exe(char *buf, size_t cap);
/* forget experiment erasure (cmd_experiment_erasure.c), dispatched from forget experiment. */
int experiment_erasure(int argc, char **argv);
/* forget experiment redteam (cmd_experiment_redteam.c), likewise. */
int experiment_redteam(int argc, char **argv);
/* forget bench lm (cmd_bench_lm.c). */
int bench_lm(int argc, char **argv);
/* forget bench unet (cmd_bench_unet.c). */
int bench_unet(int argc, char **argv);
/* The machine's sgemm GFLOP/s (2048^3, median of iters) through the one GEMM seam. */
double bench_sgemm_peak(int iters);
/* The API key: --api-key-file FILE (first line), else $FORGET_API_KEY, else --api-key K (visible
 * to every user in ps: the others are the ways to pass a secret). *out is malloc'd or NULL (none);
 * EXIT_WORK with the error printed when the file cannot be read or holds no key. */
int cli_api_key(const char *cmd, const char *key_opt, const char *key_file, char **out);
/* Prints j as one line of JSON on stdout; with a non-finite number in it prints nothing, reports
 * where the number is and returns EXIT_WORK (JSON has no NaN). */
int cli_json_line(const char *cmd, const void *j);
/* A comma list of precisions ("fp32,bf16,int8") into out[0..cap) and *n; EXIT_USAGE with the error
 * printed for an unknown name or more than cap of them. */
#include "core/gemm_mixed.h"
int cli_parse_precisions(const char *cmd, const char *list, Precision *out, int cap, int *n);
/* Splits "a,b,c" into a NULL-terminated malloc'd array of trimmed strings (one block; free once). */
char **cli_split(const char *s, char sep, int *n);

#endif
