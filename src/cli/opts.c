#include "cli/opts.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/threads.h"

int cli_parse_double(const char *s, double lo, double hi, int open, double *out) {
    char *end;
    errno = 0;
    const double v = strtod(s, &end);
    if (!*s || *end || errno || !isfinite(v)) return -1;
    if (open ? !(v > lo && v < hi) : !(v >= lo && v <= hi)) return -1;
    *out = v;
    return 0;
}

static int parse_integer(const char *s, double lo, double hi, long long *out) {
    char *end;
    errno = 0;
    const long long v = strtoll(s, &end, 10);
    if (!*s || *end || errno || (double)v < lo || (double)v > hi) return -1;
    *out = v;
    return 0;
}

static const Opt THREADS = O_INT("--threads", "N", NULL, 0, 4096, "worker threads (0: all cores)");

static const Opt *find(const Opt *opts, const char *name) {
    for (const Opt *o = opts; o->type != OPT_END; o++)
        if (strcmp(o->name, name) == 0) return o;
    return NULL;
}

static void range_text(const Opt *o, char *buf, size_t cap) {
    if (o->type == OPT_INT || o->type == OPT_LONG || o->type == OPT_U64)
        snprintf(buf, cap, "an integer in %.0f..%.0f", o->lo, o->hi);
    else if (o->flags & OPT_OPEN)
        snprintf(buf, cap, "a number in (%g, %g)", o->lo, o->hi);
    else
        snprintf(buf, cap, "a number in [%g, %g]", o->lo, o->hi);
}

static int set_value(const struct Command *c, const Opt *o, const char *v) {
    char want[96];
    long long n;
    double d;
    switch (o->type) {
    case OPT_INT:
    case OPT_LONG:
    case OPT_U64:
        if (parse_integer(v, o->lo, o->hi, &n)) {
            range_text(o, want, sizeof want);
            return cli_error(c->name, EXIT_USAGE, "%s expects %s, got \"%s\"", o->name, want, v);
        }
        if (o->type == OPT_INT) *(int *)o->dst = (int)n;
        else if (o->type == OPT_LONG) *(long *)o->dst = (long)n;
        else *(uint64_t *)o->dst = (uint64_t)n;
        return 0;
    case OPT_DOUBLE:
    case OPT_FLOAT:
        if (cli_parse_double(v, o->lo, o->hi, (o->flags & OPT_OPEN) != 0, &d)) {
            range_text(o, want, sizeof want);
            return cli_error(c->name, EXIT_USAGE, "%s expects %s, got \"%s\"", o->name, want, v);
        }
        if (o->type == OPT_DOUBLE) *(double *)o->dst = d;
        else *(float *)o->dst = (float)d;
        return 0;
    case OPT_STRING: *(const char **)o->dst = v; return 0;
    case OPT_CHOICE:
        for (int k = 0; o->choices[k]; k++)
            if (strcmp(v, o->choices[k]) == 0) {
                *(int *)o->dst = k;
                return 0;
            }
        {
            char list[256] = "";
            for (int k = 0; o->choices[k]; k++) {
                size_t l = strlen(list);
                snprintf(list + l, sizeof list - l, "%s%s", k ? (o->choices[k + 1] ? ", " : " or ") : "", o->choices[k]);
            }
            return cli_error(c->name, EXIT_USAGE, "%s must be %s, got \"%s\"", o->name, list, v);
        }
    case OPT_CUSTOM: {
        char msg[256] = "";
        if (o->parse(v, o->dst, msg, sizeof msg)) return cli_error(c->name, EXIT_USAGE, "%s: %s", o->name, msg);
        return 0;
    }
    default: return cli_error(c->name, EXIT_USAGE, "%s: option table error", o->name);
    }
}

int cli_parse(const struct Command *c, int argc, char **argv, int first, const Opt *opts, OptValues *pos) {
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            cli_print_help(c, opts);
            return 0;
        }
        const int end_of_options = strcmp(a, "--") == 0;
        if (strncmp(a, "--", 2) != 0 || end_of_options) {
            if (!pos) return cli_error(c->name, EXIT_USAGE, "unexpected argument \"%s\" (forget help %s)", a, c->name);
            const int from = end_of_options ? i + 1 : i, to = end_of_options ? argc : i + 1;
            for (int k = from; k < to; k++) {
                if (!pos->v) pos->v = (const char **)(argv + k);
                if ((const char **)(argv + k) != pos->v + pos->n)
                    return cli_error(c->name, EXIT_USAGE,
                                     "\"%s\": the arguments of forget %s go together, before or after the options", argv[k],
                                     c->name);
                pos->n++;
            }
            if (end_of_options) break;
            continue;
        }
        int threads = -1;
        const Opt *o = find(opts, a);
        Opt tmp;
        if (!o && strcmp(a, "--threads") == 0) tmp = THREADS, tmp.dst = &threads, o = &tmp;
        if (!o) return cli_error(c->name, EXIT_USAGE, "unknown option %s (forget help %s)", a, c->name);
        if (o->type == OPT_FLAG) {
            *(int *)o->dst = 1;
            continue;
        }
        if (o->type == OPT_VALUES) {
            OptValues *vals = o->dst;
            vals->v = (const char **)(argv + i + 1);
            vals->n = 0;
            while (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) i++, vals->n++;
            continue;
        }
        if (i + 1 >= argc)
            return cli_error(c->name, EXIT_USAGE, "option %s needs a value (see forget help %s)", a, c->name);
        if (set_value(c, o, argv[++i])) return EXIT_USAGE;
        if (threads >= 0) threads_set(threads);
    }
    char missing[256] = "";
    int nm = 0;
    for (const Opt *o = opts; o->type != OPT_END; o++) {
        if (!(o->flags & OPT_REQUIRED)) continue;
        int set = o->type == OPT_STRING ? *(const char **)o->dst != NULL : o->type == OPT_VALUES ? ((OptValues *)o->dst)->n > 0 : 1;
        if (set) continue;
        size_t l = strlen(missing);
        snprintf(missing + l, sizeof missing - l, "%s%s", nm++ ? ", " : "", o->name);
    }
    if (nm) return cli_error(c->name, EXIT_USAGE, "missing required option%s %s (forget help %s)", nm > 1 ? "s" : "", missing, c->name);
    return -1;
}

/* The default a destination holds before parsing, as text ("" when there is none to show). */
static void default_text(const Opt *o, char *buf, size_t cap) {
    buf[0] = 0;
    if (!o->dst) return;
    switch (o->type) {
    case OPT_INT:
        if (*(int *)o->dst) snprintf(buf, cap, "%d", *(int *)o->dst);
        break;
    case OPT_LONG:
        if (*(long *)o->dst) snprintf(buf, cap, "%ld", *(long *)o->dst);
        break;
    case OPT_U64: snprintf(buf, cap, "%llu", (unsigned long long)*(uint64_t *)o->dst); break;
    case OPT_DOUBLE:
        if (*(double *)o->dst != 0) snprintf(buf, cap, "%g", *(double *)o->dst);
        break;
    case OPT_FLOAT:
        if (*(float *)o->dst != 0) snprintf(buf, cap, "%g", (double)*(float *)o->dst);
        break;
    case OPT_STRING:
        if (*(const char **)o->dst) snprintf(buf, cap, "%s", *(const char **)o->dst);
        break;
    case OPT_CHOICE: snprintf(buf, cap, "%s", o->choices[*(int *)o->dst]); break;
    default: break;
    }
}

void cli_print_help(const struct Command *c, const Opt *opts) {
    fputs(c->help, stdout);
    printf("\noptions:\n");
    const Opt *all[2] = {opts, &THREADS};
    for (int k = 0; k < 2; k++)
        for (const Opt *o = all[k]; o->type != OPT_END; o++) {
            char head[64], def[128], range[96] = "";
            snprintf(head, sizeof head, "%s%s%s", o->name, o->metavar ? " " : "", o->metavar ? o->metavar : "");
            default_text(o, def, sizeof def);
            if (o->type == OPT_INT || o->type == OPT_LONG || o->type == OPT_U64 || o->type == OPT_DOUBLE ||
                o->type == OPT_FLOAT)
                range_text(o, range, sizeof range);
            printf("  %-26s %s", head, o->help ? o->help : "");
            if (o->flags & OPT_REQUIRED) printf(" (required)");
            if (def[0] || range[0]) {
                printf(" [");
                if (def[0]) printf("default %s%s", def, range[0] ? "; " : "");
                if (range[0]) printf("%s", range);
                printf("]");
            }
            putchar('\n');
            if (k == 1) break;
        }
}
