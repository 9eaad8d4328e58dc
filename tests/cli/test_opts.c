/* The declarative option parser every command uses: types, ranges, required options, values up
 * to the next option, positional arguments, "--", and the generated help. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "test.h"

static int dummy_run(int argc, char **argv) {
    (void)argc, (void)argv;
    return 0;
}
static const Command CMD = {"demo", "a test command", "usage: forget demo ...\n", dummy_run};

typedef struct {
    const char *s;
    int n, flag, choice;
    long l;
    uint64_t seed;
    double d;
    float f;
    OptValues vals, pos;
} Vals;

static int parse(Vals *v, const char *line) {
    static char buf[512];
    char *argv[32];
    int argc = 0;
    snprintf(buf, sizeof buf, "forget %s", line);
    for (char *t = strtok(buf, " "); t && argc < 31; t = strtok(NULL, " ")) argv[argc++] = t;
    static const char *const CH[] = {"red", "green", "blue", NULL};
    const Opt opts[] = {
        {.name = "--s", .metavar = "S", .type = OPT_STRING, .flags = OPT_REQUIRED, .help = "a string", .dst = &v->s},
        O_INT("--n", "N", &v->n, 1, 10, "an int"),
        O_LONG("--l", "L", &v->l, -5, 5, "a long"),
        {.name = "--seed", .type = OPT_U64, .lo = 0, .hi = 100, .dst = &v->seed},
        O_DBL("--d", "D", &v->d, 0, 1, OPT_OPEN, "open interval"),
        O_FLT("--f", "F", &v->f, 0, 2, 0, "closed interval"),
        O_FLAG("--flag", &v->flag, "a flag"),
        O_CHOICE("--c", &v->choice, CH, "a colour"),
        O_VALS("--vals", "X...", &v->vals, "values"),
        O_END,
    };
    /* argv[0] is "forget", argv[1] the first argument */
    return cli_parse(&CMD, argc, argv, 1, opts, &v->pos);
}

TEST(cli_opts_parse_types_ranges_and_errors) {
    Vals v = {.n = 3};
    CHECK_INT(parse(&v, "--s hi --n 10 --l -5 --seed 7 --d 0.5 --f 2 --flag --c blue --vals a b c"), -1);
    CHECK(strcmp(v.s, "hi") == 0);
    CHECK_INT(v.n, 10);
    CHECK_INT((int)v.l, -5);
    CHECK_INT((int)v.seed, 7);
    CHECK_NEAR(v.d, 0.5, 0);
    CHECK_NEAR(v.f, 2, 0);
    CHECK_INT(v.flag, 1);
    CHECK_INT(v.choice, 2);
    CHECK_INT(v.vals.n, 3);
    CHECK(strcmp(v.vals.v[2], "c") == 0);
    /* positional arguments together before or after the options; "--" ends the options */
    Vals p = {0};
    CHECK_INT(parse(&p, "x y --s a"), -1);
    CHECK_INT(p.pos.n, 2);
    Vals q = {0};
    CHECK_INT(parse(&q, "--s a -- --n z"), -1);
    CHECK_INT(q.pos.n, 2);
    CHECK(strcmp(q.pos.v[0], "--n") == 0);
    /* every error is a usage error */
    const char *bad[] = {"--s a --n 11", "--s a --n x", "--s a --l 6", "--s a --d 1", "--s a --d 0", "--s a --f nan",
                         "--s a --c pink", "--n 2", "--s", "--s a --what", "x --s a y", "--s a --seed -1"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        Vals w = {0};
        CHECK_MSG(parse(&w, bad[i]) == EXIT_USAGE, "accepted: %s", bad[i]);
    }
}

TEST(cli_opts_help_is_generated_from_the_table) {
    char path[] = "/tmp/forget-opts-help-XXXXXX";
    int fd = mkstemp(path);
    fflush(stdout);
    int saved = dup(1);
    dup2(fd, 1);
    Vals v = {.n = 4};
    int rc = parse(&v, "--help");
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    CHECK_INT(rc, 0);
    char text[4096] = "";
    FILE *f = fopen(path, "r");
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = 0;
    fclose(f);
    close(fd);
    unlink(path);
    CHECK(strstr(text, "usage: forget demo"));
    CHECK(strstr(text, "--n N") && strstr(text, "default 4; an integer in 1..10"));
    CHECK(strstr(text, "--s S") && strstr(text, "(required)"));
    CHECK(strstr(text, "--d D") && strstr(text, "(0, 1)"));
    CHECK(strstr(text, "--threads N"));
}
