/* forget blackbox end to end on loopback, for the plumbing: the search spends at most its
 * budget, the server counts exactly the queries the client made, results are fractions,
 * the chosen suffix has L words, a bad --forget is refused. (Whether it forgets well is an
 * experiment on a trained model, not a unit test: see docs/blackbox.md.) */
#include <stdlib.h>
#include <string.h>

#include "forget/blackbox.h"
#include "serve/client.h"
#include "serve/server.h"
#include "serve/fixture.h"
#include "test.h"

TEST(blackbox_search_through_the_api_only) {
    char url[64];
    BbServer *s = tiny_server((ServerOpts){.dataset = "fmnist:test"}, url, sizeof url);
    if (!s) return;
    Err e = {{0}};
    BlackboxOpts o;
    blackbox_defaults(&o);
    o.api = url;
    o.forget = "t-shirt,1,bag";
    o.budget = 100;
    o.shots = 4;
    o.vocab_max = 50;
    o.quiet = 1;
    BlackboxResult r;
    CHECK_MSG(blackbox_run(&o, &r, &e) == 0, "%s", e.msg);
    CHECK(r.queries <= 100 && r.queries >= 31);
    CHECK(r.err_forget >= 0 && r.err_forget <= 1 && r.acc_keep >= 0 && r.acc_keep <= 1 && r.h >= 0 && r.h <= 1);
    int words = 1;
    for (const char *p = r.suffix; *p; p++) words += *p == ' ';
    CHECK_MSG(words == 4 && r.suffix[0], "suffix \"%s\"", r.suffix);
    CHECK_MSG(strstr(r.settings, "K=3,") && strstr(r.settings, "elitist=1"), "settings \"%s\"", r.settings); /* what ran */
    BbClient c;
    long q, n;
    CHECK(bb_client_init(&c, url, NULL, &e) == 0 && bb_stats(&c, &q, &n, &e) == 0);
    CHECK_INT(q, r.queries + r.eval_queries);
    bb_client_free(&c);
    o.forget = "t-shirt,nosuchclass";
    CHECK(blackbox_run(&o, &r, &e) != 0 && strstr(e.msg, "nosuchclass"));
    o.forget = "t-shirt";
    const char *methods[4] = {"random", "greedy", "ga", "bdpl"};
    for (int k = 0; k < 4; k++) {
        o.method = methods[k];
        CHECK_MSG(blackbox_run(&o, &r, &e) == 0 && r.queries <= 100 && !r.settings[0], "%s: %s", methods[k], e.msg);
    }
    o.method = "bbt"; /* the loose baselines need a server that takes embeddings */
    CHECK(blackbox_run(&o, &r, &e) != 0 && strstr(e.msg, "--allow-embeddings"));
    o.method = "coop"; /* the white box needs the weights */
    CHECK(blackbox_run(&o, &r, &e) != 0 && strstr(e.msg, "--model"));
    o.method = "nosuch";
    CHECK(blackbox_run(&o, &r, &e) != 0 && strstr(e.msg, "nosuch"));
    bb_server_stop(s);
}

TEST(blackbox_loose_and_white_box_methods) {
    char url[64];
    BbServer *s = tiny_server((ServerOpts){.dataset = "fmnist:test", .allow_embeddings = 1}, url, sizeof url);
    if (!s) return;
    Err e = {{0}};
    BlackboxOpts o;
    blackbox_defaults(&o);
    o.api = url;
    o.forget = "0,1,2,3";
    o.budget = 100;
    o.shots = 4;
    o.quiet = 1;
    o.curve_points = 2;
    const char *methods[2] = {"bbt", "bbf"};
    for (int k = 0; k < 2; k++) {
        BlackboxResult r;
        o.method = methods[k];
        CHECK_MSG(blackbox_run(&o, &r, &e) == 0, "%s: %s", methods[k], e.msg);
        CHECK(r.family == 1 && r.queries <= 100 && r.queries >= 21 && r.h >= 0 && r.h <= 1 && r.val_h >= 0);
        CHECK(r.n_curve >= 1 && r.curve_queries[r.n_curve - 1] <= 100);
    }
    /* CoOp: in process on the split the server serves; its validation H can only rise from the start */
    BlackboxResult r;
    o.method = "coop";
    char model[1024];
    o.model = tiny_model_path(model, sizeof model);
    o.dataset = "fmnist:test";
    o.coop_steps = 20;
    CHECK_MSG(blackbox_run(&o, &r, &e) == 0, "%s", e.msg);
    CHECK(r.family == 2 && r.queries == 0 && r.h >= 0 && r.h <= 1 && r.val_h >= 0);
    bb_server_stop(s);
}
