/* Declarative command-line options: each command lists its options in one table (name, type,
 * range, help line, where the value goes), and one parser reads argv against it, so every
 * command gives the same errors ("--budget expects an integer in 1..100000000, got "x"") and
 * `--help` is generated from the same table (with each option's default: the value its
 * destination holds before parsing). Option groups that several commands take (the black-box
 * search's) are defined once in cli_groups.c and bound to each command's fields. */
#ifndef FORGET_CLI_OPTS_H
#define FORGET_CLI_OPTS_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    OPT_END = 0,
    OPT_FLAG,    /* int *: set to 1 */
    OPT_INT,     /* int *, range [lo, hi] */
    OPT_LONG,    /* long * */
    OPT_U64,     /* uint64_t * (seeds) */
    OPT_DOUBLE,  /* double *, range [lo, hi] (OPT_OPEN: (lo, hi)) */
    OPT_FLOAT,   /* float * */
    OPT_STRING,  /* const char ** (argv's own string) */
    OPT_VALUES,  /* OptValues *: every argument up to the next --option */
    OPT_CHOICE,  /* int *: the index of the value in the NULL-terminated `choices` */
    OPT_CUSTOM,  /* parse(value, dst, msg, cap) */
} OptType;

enum { OPT_REQUIRED = 1, OPT_OPEN = 2 };

typedef struct {
    const char **v;
    int n;
} OptValues;

typedef int (*OptParseFn)(const char *value, void *dst, char *msg, size_t cap);

typedef struct {
    const char *name;    /* "--budget" */
    const char *metavar; /* "N" in the help; NULL for a flag */
    OptType type;
    double lo, hi;
    unsigned flags;
    const char *help;
    void *dst;
    const char *const *choices; /* OPT_CHOICE */
    OptParseFn parse;            /* OPT_CUSTOM */
} Opt;

/* Table entries (designated initialisers: the fields a type does not use stay zero). */
#define O_FLAG(nm, d, h) {.name = (nm), .type = OPT_FLAG, .help = (h), .dst = (d)}
#define O_STR(nm, mv, d, fl, h) {.name = (nm), .metavar = (mv), .type = OPT_STRING, .flags = (fl), .help = (h), .dst = (d)}
#define O_INT(nm, mv, d, l, u, h) {.name = (nm), .metavar = (mv), .type = OPT_INT, .lo = (l), .hi = (u), .help = (h), .dst = (d)}
#define O_LONG(nm, mv, d, l, u, h) {.name = (nm), .metavar = (mv), .type = OPT_LONG, .lo = (l), .hi = (u), .help = (h), .dst = (d)}
#define O_DBL(nm, mv, d, l, u, fl, h) \
    {.name = (nm), .metavar = (mv), .type = OPT_DOUBLE, .lo = (l), .hi = (u), .flags = (fl), .help = (h), .dst = (d)}
#define O_FLT(nm, mv, d, l, u, fl, h) \
    {.name = (nm), .metavar = (mv), .type = OPT_FLOAT, .lo = (l), .hi = (u), .flags = (fl), .help = (h), .dst = (d)}
#define O_VALS(nm, mv, d, h) {.name = (nm), .metavar = (mv), .type = OPT_VALUES, .help = (h), .dst = (d)}
#define O_CHOICE(nm, d, ch, h) {.name = (nm), .metavar = "WORD", .type = OPT_CHOICE, .help = (h), .dst = (d), .choices = (ch)}
#define O_CUSTOM(nm, mv, d, fn, h) {.name = (nm), .metavar = (mv), .type = OPT_CUSTOM, .help = (h), .dst = (d), .parse = (fn)}
#define O_END {.type = OPT_END}

/* A copy of a shared option bound to a destination. */
static inline Opt opt_bind(Opt o, void *dst) {
    o.dst = dst;
    return o;
}

struct Command;
/* Parses argv[first..] against opts (terminated by a zeroed entry); --help/-h and --threads N are
 * every command's. Non-option arguments go to pos (or are an error when pos is NULL). Returns -1
 * to go on, 0 after --help, EXIT_USAGE after an error (printed: "forget CMD: ..."). */
int cli_parse(const struct Command *c, int argc, char **argv, int first, const Opt *opts, OptValues *pos);
/* The command's help text followed by its options, generated from the table. */
void cli_print_help(const struct Command *c, const Opt *opts);
/* A number with the range and message rules of OPT_DOUBLE, for values parsed inside a custom one. */
int cli_parse_double(const char *s, double lo, double hi, int open, double *out);

#endif
