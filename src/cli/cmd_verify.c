#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_groups.h"
#include "io/safetensors.h"

static int run(int argc, char **argv);

const Command cmd_verify = {
    "verify", "check safetensors files: structure, digests, finite weights",
    "usage: forget verify FILE... [--no-finite]\n"
    "\n"
    "Checks each file as every loader does (header, offsets, no holes or overlaps), then the\n"
    "digest of every tensor's bytes that forget writes into the metadata of each file it makes\n"
    "(XXH3-128; files from other tools have none and are checked for structure only), and that\n"
    "every floating-point weight is finite (--no-finite skips this). Prints one line per file;\n"
    "the first damaged tensor is named. Exit 0 when every file is sound, 1 otherwise.\n",
    run};

/* The first non-finite element of a float tensor, or -1. */
static long first_nonfinite(const StTensor *t, Err *e) {
    if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16 && t->dtype != ST_F64) return -1;
    const int64_t n = st_numel(t);
    float *v = xalloc_floats((size_t)(n ? n : 1));
    long bad = -1;
    if (st_to_f32(t, v, e) == 0)
        for (int64_t i = 0; i < n && bad < 0; i++)
            if (!isfinite(v[i])) bad = (long)i;
    free(v);
    return bad;
}

static int run(int argc, char **argv) {
    int no_finite = 0, failed = 0;
    OptValues files = {0};
    const Opt opts[] = {
        O_FLAG("--no-finite", &no_finite, "skip the check that every weight is finite"),
        O_END,
    };
    const int parsed = cli_parse(&cmd_verify, argc, argv, 1, opts, &files);
    if (parsed >= 0) return parsed;
    if (!files.n) return cli_error("verify", EXIT_USAGE, "name at least one file (forget help verify)");
    const int finite = !no_finite;
    for (int f = 0; f < files.n; f++) {
        const char *path = files.v[f];
        SafeTensors st;
        Err e = {{0}};
        if (st_open(&st, path, &e)) {
            cli_error("verify", EXIT_WORK, "%s", e.msg);
            failed++;
            continue;
        }
        int ok = 1;
        for (int k = 0; k < st.n && finite && ok; k++) {
            long at = first_nonfinite(&st.tensors[k], &e);
            if (at >= 0) {
                cli_error("verify", EXIT_WORK, "%s: tensor '%s' holds a NaN or an infinity at element %ld", path,
                          st.tensors[k].name, at);
                ok = 0;
            }
        }
        if (ok)
            printf("%s: ok, %d tensors, %s%s\n", path, st.n,
                   st_has_digests(&st) ? "every digest matches (xxh3-128)" : "no digests (not written by forget): structure only",
                   finite ? ", all weights finite" : "");
        failed += !ok;
        st_close(&st);
    }
    return failed ? EXIT_WORK : 0;
}
