/* forget eval mllm: the MLLM on its world's questions (eval/mllm_eval.h). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_groups.h"
#include "cli/cli_mllm.h"
#include "eval/mllm_eval.h"
#include "eval/report_html.h"
#include "io/atomic_file.h"
#include "io/image.h"

extern const Command cmd_eval;

static const char *const SETS[] = {"a", "b", "forget", "retain", "test", "general", NULL};
static const char *const TASKS[] = {"choice", "generate", "cloze", NULL};
static const char *const FORMS[] = {"default", "trained", "held-out", NULL};

/* "0,3,5" -> mask over the people. */
static int people_mask(const char *list, uint8_t *mask, int n, Err *e) {
    memset(mask, 0, (size_t)n);
    for (const char *p = list; *p;) {
        char *end;
        const long v = strtol(p, &end, 10);
        if (end == p || v < 0 || v >= n) return err_set(e, "--forget-people: '%s' is not a list of people 0..%d", list, n - 1);
        mask[v] = 1;
        p = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') return err_set(e, "--forget-people: '%s' is not a comma-separated list", list);
    }
    return 0;
}

/* N seeded questions of the selection with the model's greedy answers: DIR/transcripts.md, .html
 * (the images inline) and DIR/q-K.png. */
static int transcripts(const Mllm *m, const SpTokenizer *t, const World *w, const MllmEvalSel *sel, int n,
                       const char *dir, Err *e) {
    if (mkdir(dir, 0755) && access(dir, F_OK)) return err_set(e, "%s: cannot create the directory", dir);
    int *pick = xmalloc(sizeof(int) * (size_t)(world_n_qa(w) + 1)), np = 0;
    for (int i = 0; i < world_n_qa(w); i++) {
        const WorldQA *q = world_qa(w, i);
        if (((sel->sets >> q->set) & 1u) && q->test == sel->test && (!sel->people_mask || q->person < 0 || sel->people_mask[q->person]))
            pick[np++] = i;
    }
    Rng r;
    rng_seed(&r, sel->seed + 17);
    rng_shuffle(&r, pick, np, sizeof(int));
    if (n > np) n = np;
    char *md_path = xasprintf("%s/transcripts.md", dir), *html_path = xasprintf("%s/transcripts.html", dir);
    char *md = NULL, *html = NULL;
    size_t md_len = 0, html_len = 0;
    FILE *fm = open_memstream(&md, &md_len), *fh = open_memstream(&html, &html_len);
    fprintf(fm, "# Transcripts\n\n| # | image | question | answer | reference |\n|---|---|---|---|---|\n");
    html_report_begin(fh, "MLLM transcripts");
    fprintf(fh, "<style>td{text-align:left}</style><h1>MLLM transcripts</h1><p>Greedy answers of the model to questions of its world; images at 4x.</p>"
                "<table><tr><th>#</th><th>image</th><th>question</th><th>answer</th><th>reference</th><th>ROUGE-L F</th></tr>\n");
    const LmSampling gs = {.max_tokens = sel->max_tokens > 0 ? sel->max_tokens : 40, .eos = sp_eos(t)};
    int rc = 0;
    for (int k = 0; k < n && rc == 0; k++) {
        const WorldQA *q = world_qa(w, pick[k]);
        const int img = q->form == WFORM_IMAGE;
        char *ans = mllm_answer(m, t, w, q->question, img ? &q->image : NULL, NULL, &gs, e);
        if (!ans) {
            rc = -1;
            break;
        }
        char *b64 = NULL, *png = NULL;
        if (img) {
            Image8 im = {.w = WORLD_IMG, .h = WORLD_IMG, .channels = 3};
            im.px = xmalloc((size_t)WORLD_IMG * WORLD_IMG * 3);
            world_render(w, &q->image, im.px);
            png = xasprintf("%s/q-%d.png", dir, k);
            rc = image_save_png(&im, png, e);
            if (rc == 0) b64 = image_png_base64(&im, png, e);
            free(im.px);
        }
        fprintf(fm, "| %d | %s | %s | %s | %s |\n", k, img ? strrchr(png, '/') + 1 : "(text only)", q->question, ans,
                q->answer);
        fprintf(fh, "<tr><td>%d</td><td>", k);
        if (b64) fprintf(fh, "<img style=\"width:128px;image-rendering:pixelated\" src=\"data:image/png;base64,%s\">", b64);
        else fprintf(fh, "(text only)");
        fprintf(fh, "</td><td>");
        html_escape(fh, q->question);
        fprintf(fh, "</td><td>");
        html_escape(fh, ans);
        fprintf(fh, "</td><td>");
        html_escape(fh, q->answer);
        fprintf(fh, "</td><td>%.2f</td></tr>\n", rouge_l_f(ans, q->answer));
        free(ans), free(b64), free(png);
    }
    fprintf(fh, "</table></body></html>\n");
    fclose(fm), fclose(fh);
    if (rc == 0) rc = write_file_atomic(md_path, md, md_len, e);
    if (rc == 0) rc = write_file_atomic(html_path, html, html_len, e);
    free(md), free(html), free(md_path), free(html_path), free(pick);
    return rc;
}

int eval_mllm(int argc, char **argv) {
    const char *model = NULL, *tok = NULL, *forget_people = NULL;
    int set = 0, task = 0, forms = 0, limit = 0, json = 0, quiet = 0, max_tokens = 40, n_transcripts = 0;
    const char *out = NULL;
    uint64_t seed = 0;
    const Opt opts[] = {
        O_STR("--model", "FILE", &model, OPT_REQUIRED, "an MLLM made by forget train-mllm"),
        O_CHOICE("--set", &set, SETS,
                 "a, b (the two sets' trained questions), forget / retain (--forget-people and the rest), "
                 "test (held-out forms), general (the held-out benchmark)"),
        O_CHOICE("--task", &task, TASKS, "choice (4-choice accuracy), generate (ROUGE-L F), cloze (exact match)"),
        O_CHOICE("--forms", &forms, FORMS,
                 "trained (the questions and faces trained on, in a pose never drawn: validation) or held-out "
                 "(paraphrases, new poses; test data); default: held-out for test and general, trained otherwise"),
        O_STR("--forget-people", "LIST", &forget_people, 0, "people of the forget set: indices like 0,1,2"),
        O_STR("--tokenizer", "FILE", &tok, 0, "SentencePiece model (default: tokenizer.model beside the model)"),
        O_INT("--limit", "N", &limit, 0, 1 << 30, "at most N questions, a seeded choice (0: all)"),
        O_INT("--max-tokens", "N", &max_tokens, 1, 512, "longest generated answer"),
        O_INT("--transcripts", "N", &n_transcripts, 0, 10000, "also write N questions with the model's answers (--out)"),
        O_STR("--out", "DIR", &out, 0, "where --transcripts go: transcripts.md, transcripts.html, q-K.png"),
        opt_bind(OPT_SEED, &seed),
        opt_bind(OPT_QUIET, &quiet),
        opt_bind(OPT_JSON, &json),
        O_END,
    };
    const int st = cli_parse(&cmd_eval, argc, argv, 2, opts, NULL);
    if (st >= 0) return st;
    Err e = {{0}};
    WorldOpts wo;
    if (world_opts_read(model, &wo, &e)) return cli_error("eval", EXIT_WORK, "%s", e.msg);
    Mllm m;
    SpTokenizer *t = NULL;
    if (cli_mllm_open(model, tok, &m, &t, &e)) return cli_error("eval", EXIT_WORK, "%s", e.msg);
    World *w = world_build(&wo, &e);
    int rc = w ? 0 : -1;
    uint8_t *mask = NULL;
    MllmEvalSel sel = {.limit = limit, .seed = seed, .max_tokens = max_tokens, .quiet = quiet || json};
    if (rc == 0 && (set == 2 || set == 3 || (set == 4 && forget_people))) {
        if (!forget_people) rc = err_set(&e, "--set %s needs --forget-people", SETS[set]);
        else {
            mask = xmalloc((size_t)world_n_people(w));
            rc = people_mask(forget_people, mask, world_n_people(w), &e);
            if (rc == 0 && set == 3)
                for (int i = 0; i < world_n_people(w); i++) mask[i] = !mask[i];
        }
    }
    const unsigned sets[] = {1u << WSET_A, 1u << WSET_B, 3u, 3u, 3u, 1u << WSET_GENERAL};
    sel.sets = sets[set], sel.test = forms ? forms == 2 : set >= 4, sel.people_mask = mask;
    MllmScore s;
    if (rc == 0 && n_transcripts && !out) rc = err_set(&e, "--transcripts needs --out DIR");
    if (rc == 0) rc = mllm_eval(&m, t, w, &sel, (MllmTask)task, &s, &e);
    if (rc == 0 && n_transcripts) rc = transcripts(&m, t, w, &sel, n_transcripts, out, &e);
    if (rc) {
        rc = cli_error("eval", EXIT_WORK, "%s", e.msg);
    } else if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "set", SETS[set]);
        cJSON_AddStringToObject(j, "task", TASKS[task]);
        cJSON_AddNumberToObject(j, "n", s.n);
        cJSON_AddNumberToObject(j, "score", s.score);
        cJSON_AddNumberToObject(j, "n_image", s.n_image);
        cJSON_AddNumberToObject(j, "score_image", s.score_image);
        cJSON_AddNumberToObject(j, "n_text", s.n_text);
        cJSON_AddNumberToObject(j, "score_text", s.score_text);
        rc = cli_json_line("eval", j);
        cJSON_Delete(j);
    } else {
        printf("eval mllm: set %s, %s: %.1f%% over %d questions (image+text %.1f%% of %d, text-only %.1f%% of %d)\n",
               SETS[set], TASKS[task], 100 * s.score, s.n, 100 * s.score_image, s.n_image, 100 * s.score_text, s.n_text);
    }
    free(mask);
    world_free(w);
    sp_free(t);
    mllm_free(&m);
    return rc;
}
