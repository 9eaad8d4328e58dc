#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_groups.h"
#include "io/tokenizer.h"
#include "io/file_open.h"

static int run(int argc, char **argv);

const Command cmd_tokenize = {
    "tokenize", "CLIP BPE token ids of texts",
    "usage: forget tokenize [--context N] [--json] TEXT...\n"
    "       forget tokenize [--context N] [--json] --jsonl FILE\n"
    "\n"
    "Prints one line per text: the ids clip.tokenize(text, truncate=True) gives,\n"
    "with the trailing zero padding removed (so each line starts with 49406 and ends\n"
    "with 49407). --jsonl reads one JSON string per line ('-' = standard input).\n"
    "ftfy.fix_text's fixes for text that is not mojibake are applied first, as CLIP's code\n"
    "does with ftfy installed (see docs/engine.md); --no-ftfy gives the ids of OpenAI's code\n"
    "with ftfy stubbed out.\n"
    "",
    run};

static void print_ids(const int32_t *ids, int n, int json) {
    for (int i = 0; i < n; i++) printf(json ? (i ? ",%d" : "[%d") : (i ? " %d" : "%d"), ids[i]);
    puts(json ? "]" : "");
}

static int run(int argc, char **argv) {
    int context = CLIP_CONTEXT, json = 0, no_ftfy = 0;
    const char *jsonl = NULL;
    OptValues texts = {0};
    const Opt opts[] = {
        O_INT("--context", "N", &context, 2, 100000, "context length"),
        O_STR("--jsonl", "FILE", &jsonl, 0, "read one JSON string per line ('-' = standard input)"),
        O_FLAG("--no-ftfy", &no_ftfy, "skip ftfy's fixes"),
        O_FLAG("--json", &json, "print each line as a JSON array"),
        O_END,
    };
    const int st = cli_parse(&cmd_tokenize, argc, argv, 1, opts, &texts);
    if (st >= 0) return st;
    if (!jsonl && texts.n == 0) return cli_error("tokenize", EXIT_USAGE, "give texts or --jsonl FILE (forget help tokenize)");
    Tokenizer t;
    Err e = {{0}};
    if (tokenizer_init(&t, &e) != 0) return cli_error("tokenize", EXIT_WORK, "%s", e.msg);
    t.ftfy = !no_ftfy;
    int32_t *ids = xmalloc(sizeof(int32_t) * (size_t)context);
    int rc = 0;
    if (jsonl) {
        Err fe = {{0}};
        FILE *f = strcmp(jsonl, "-") == 0 ? stdin : fopen_regular(jsonl, &fe);
        if (!f) {
            rc = cli_error("tokenize", EXIT_WORK, "%s", fe.msg);
        } else {
            char *line = NULL;
            size_t cap = 0;
            ssize_t got;
            long lineno = 0;
            while (rc == 0 && (got = getline(&line, &cap, f)) >= 0) {
                lineno++;
                while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r')) line[--got] = 0;
                if (got == 0) continue;
                cJSON *js = cJSON_Parse(line);
                if (!cJSON_IsString(js)) {
                    rc = cli_error("tokenize", EXIT_WORK, "%s:%ld: expected one JSON string per line", jsonl, lineno);
                } else {
                    int n = tokenizer_tokenize(&t, js->valuestring, context, ids, &e);
                    if (n < 0) rc = cli_error("tokenize", EXIT_WORK, "%s:%ld: %s", jsonl, lineno, e.msg);
                    else print_ids(ids, n, json);
                }
                cJSON_Delete(js);
            }
            free(line);
            if (f != stdin) fclose(f);
        }
    } else {
        for (int i = 0; i < texts.n && rc == 0; i++) {
            int n = tokenizer_tokenize(&t, texts.v[i], context, ids, &e);
            if (n < 0) rc = cli_error("tokenize", EXIT_WORK, "%s", e.msg);
            else print_ids(ids, n, json);
        }
    }
    free(ids);
    tokenizer_free(&t);
    return rc;
}
