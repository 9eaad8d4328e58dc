/* Resuming an experiment from the results file an earlier run of it left: one helper for every
 * experiment, so each validates the file the same way before trusting a number in it. */
#ifndef FORGET_RESUME_H
#define FORGET_RESUME_H

#include <cjson/cJSON.h>

#include "core/err.h"

/* Whether root describes the same experiment as ctx (model, data, settings). */
typedef int (*ResumeMatch)(const cJSON *root, const void *ctx);

/* *root = the results at path when an earlier run of the same experiment left them: a JSON
 * object (strictly parsed) whose array_field is an array and that `same` accepts. No file: 0 and
 * *root = NULL (a fresh start). A file that is not such an object: -1 naming the file and what is
 * wrong. Another experiment's: -1 ("choose another --out"), or with restart 0 and *root = NULL.
 * Every entry is still read with checks (resume_num, resume_str): the file is user data. A NULL
 * `same` accepts any such object (a report of whatever the file holds). */
int resume_load(const char *path, const char *array_field, ResumeMatch same, const void *ctx, int restart, cJSON **root,
                Err *e);
/* A number field of o, NAN when absent or not a number. */
double resume_num(const cJSON *o, const char *key);
/* A string field of o, NULL when absent or not a string. */
const char *resume_str(const cJSON *o, const char *key);

#endif
