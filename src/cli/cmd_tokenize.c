#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
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
    "\n"
    "  --context N   context length (default 77)\n"
    "  --json        print each line as a JSON array\n"
    "  --no-ftfy     skip ftfy's fixes\n",
    run};

static void print_ids(const int32_t *ids, int n, int json) {
    for (int i = 0; i < n; i++) printf(json ? (i ? ",%d" : "[%d") : (i ? " %d" : "%d"), ids[i]);
    puts(json ? "]" : "");
}

static int run(int argc, char **argv) {
    long context = CLIP_CONTEXT;
    int json = 0, done = 0, bad = 0, first_text = -1, ftfy = 1;
    const char *jsonl = NULL;
    for (int i = 1; i < argc; i++) {
        if (cli_common(&cmd_tokenize, argc, argv, &i, &done, &bad)) {
            if (done) return 0;
            if (bad) return EXIT_USAGE;
        } else if (strcmp(argv[i], "--context") == 0) {
            const char *v = cli_value("tokenize", argc, argv, &i);
            if (!v || cli_int("tokenize", "--context", v, 2, 100000, &context)) return EXIT_USAGE;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (strcmp(argv[i], "--no-ftfy") == 0) {
            ftfy = 0;
        } else if (strcmp(argv[i], "--jsonl") == 0) {
            if (!(jsonl = cli_value("tokenize", argc, argv, &i))) return EXIT_USAGE;
        } else if (strcmp(argv[i], "--") == 0) {
            first_text = i + 1;
            break;
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            return cli_error("tokenize", EXIT_USAGE, "unknown option %s (forget help tokenize)", argv[i]);
        } else {
            first_text = i;
            break;
        }
    }
    if (!jsonl && (first_text < 0 || first_text >= argc))
        return cli_error("tokenize", EXIT_USAGE, "give texts or --jsonl FILE (forget help tokenize)");
    Tokenizer t;
    Err e = {{0}};
    if (tokenizer_init(&t, &e) != 0) return cli_error("tokenize", EXIT_WORK, "%s", e.msg);
    t.ftfy = ftfy;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)context);
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
                    int n = tokenizer_tokenize(&t, js->valuestring, (int)context, ids, &e);
                    if (n < 0) rc = cli_error("tokenize", EXIT_WORK, "%s:%ld: %s", jsonl, lineno, e.msg);
                    else print_ids(ids, n, json);
                }
                cJSON_Delete(js);
            }
            free(line);
            if (f != stdin) fclose(f);
        }
    } else {
        for (int i = first_text; i < argc && rc == 0; i++) {
            int n = tokenizer_tokenize(&t, argv[i], (int)context, ids, &e);
            if (n < 0) rc = cli_error("tokenize", EXIT_WORK, "%s", e.msg);
            else print_ids(ids, n, json);
        }
    }
    free(ids);
    tokenizer_free(&t);
    return rc;
}
