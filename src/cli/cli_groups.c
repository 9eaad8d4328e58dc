#include "cli/cli_groups.h"

const Opt OPT_BB_BUDGET = O_LONG("--budget", "Q", NULL, 1, 100000000,
                                 "classify queries of the search (one per candidate, validation included)");
const Opt OPT_BB_SHOTS = O_INT("--shots", "K", NULL, 1, 1000, "training images per class (as many again validate)");
const Opt OPT_BB_SUFFIX_LEN = O_INT("--suffix-len", "L", NULL, 1, 32, "words in the strict methods' suffix");

const Opt OPT_MODEL = O_STR("--model", "FILE", NULL, 0, "CLIP model (safetensors, OpenAI or Hugging Face keys)");
const Opt OPT_DATASET = O_STR("--dataset", "NAME", NULL, 0, "data set NAME:SPLIT (forget datasets lists them)");
const Opt OPT_DATA_DIR = O_STR("--data-dir", "DIR", NULL, 0, "where the data set's files are (default: its usual place)");
const Opt OPT_SEED = {.name = "--seed", .metavar = "S", .type = OPT_U64, .lo = 0, .hi = 2147483647,
                      .help = "random seed (a run is deterministic for a seed)"};
const Opt OPT_JSON = O_FLAG("--json", NULL, "print the result as one line of JSON");
const Opt OPT_QUIET = O_FLAG("--quiet", NULL, "no progress output");
const Opt OPT_CHECK = O_FLAG("--check", NULL, "verify at load that every weight is finite");
const Opt OPT_CKPT_EVERY = O_LONG("--ckpt-every", "N", NULL, 1, 100000000, "steps between checkpoints");
const Opt OPT_STOP_AFTER = O_LONG("--stop-after", "N", NULL, 0, 100000000, "stop after N steps of this run with a checkpoint");
const Opt OPT_FRESH = O_FLAG("--fresh", NULL, "ignore an existing checkpoint");

const Opt OPT_API_KEY = O_STR("--api-key", "K", NULL, 0, "API key (shows in ps: prefer the file or FORGET_API_KEY)");
const Opt OPT_API_KEY_FILE = O_STR("--api-key-file", "FILE", NULL, 0, "API key: the file's first line");

static const char *const LAYOUTS[] = {"openai", "hf", NULL}; /* ClipLayout order */
static const char *const DTYPES[] = {"f32", "f16", "bf16", NULL};
const StDtype CLI_DTYPES[3] = {ST_F32, ST_F16, ST_BF16};
const Opt OPT_LAYOUT = O_CHOICE("--layout", NULL, LAYOUTS, "key layout of the output: openai or hf");
static const char *const PRECISIONS[] = {"fp32", "bf16", "int8", NULL}; /* Precision order */
const Opt OPT_PRECISION = O_CHOICE("--precision", NULL, PRECISIONS,
                                   "weight products in fp32, bf16 or int8 (fp32 where the CPU lacks BF16 / VNNI)");
const Opt OPT_DTYPE = O_CHOICE("--dtype", NULL, DTYPES, "dtype of the output: f32, f16 or bf16 (logit_scale stays f32)");
