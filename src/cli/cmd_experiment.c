#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_groups.h"
#include "forget/bias_experiment.h"
#include "forget/blackbox_experiment.h"
#include "forget/domain_experiment.h"
#include "forget/llm/pulse.h"
#include "forget/llm/unlearn.h"
#include "forget/lsf_experiment.h"

static int run(int argc, char **argv);

const Command cmd_experiment = {
    "experiment", "run a method family's experiment and write results.json, results.md, report.html",
    "usage: forget experiment blackbox --model FILE --dataset NAME --out DIR [--forget-ratio 0.4] [--seeds 3]\n"
    "                                  [--budget 4000] [--shots 16] [--suffix-len 4] [--lengths 1,2,4,8,16]\n"
    "                                  [--length-seeds 1] [--methods LIST] [--labels] [--data-dir DIR] [--quiet]\n"
    "       forget experiment domain --model FILE --dataset fmnist-domains|emoji100 --out DIR [--seeds 3]\n"
    "                                [--methods LIST] [--settings \"sketch;sketch,negative\"] [--shots 8] [--epochs 50]\n"
    "       forget experiment lsf --dataset fmnist|emoji100|cifar100:/DIR --out DIR [--seeds 5] [--codes LIST]\n"
    "                             [--tasks T] [--epochs N] [--train-per-class N] [--layer L] [--kappa K]\n"
    "       forget experiment bias --model FILE --out DIR [--setting emoji|spurious] [--methods LIST] [--K 8]\n"
    "                              [--vocab 2000 | --vocab-file FILE] [--queries FILE] [--seed 1] [--quiet]\n"
    "       forget experiment erasure --model UNET --text-encoder CLIP --judge FILE [--clip CLIP] --out DIR\n"
    "       forget experiment redteam --model UNET --text-encoder CLIP --judge FILE --external CLIP --out DIR\n"
    "                                 [--concepts all|A,B] [--methods LIST] [--redteam \"ARGS\"]\n"
    "                                 [--concepts all] [--methods LIST] [--per-class 12] [--steps 25]\n"
    "       forget experiment pulse --model MLLM --out DIR [--seeds 1] [--methods LIST] [--forget-count 5]\n"
    "                               [--chunks 5] [--lrs 1e-4,3e-4,1e-3,3e-3] [--max-epochs 5] [--target 0.30]\n"
    "\n"
    "pulse (OUR RECONSTRUCTION of PULSE's protocol, docs/pulse.md): every unlearning method (forget unlearn --help)\n"
    "forgets --forget-count people of set A (pre-trained knowledge) and, apart, of set B (fine-tuned knowledge), and\n"
    "the set-A people again in --chunks sequential requests; the learning rate and epochs of each method come from\n"
    "validation people (the smallest rate of --lrs reaching --target 4-choice accuracy, at the first epoch that does).\n"
    "After every operation forget / test / retain / general accuracy (4-choice, ROUGE-L, cloze; image+text and\n"
    "text-only). DIR/results.json after every operation (a rerun resumes, a sequential run at its step), results.md,\n"
    "report.html. --report-only rewrites the last two from results.json.\n"
    "\n"
    "redteam: forget erase then forget redteam for every erasure method (default none,escape,esd-x,esd-u,fmn,uce,\n"
    "sld) and class: DIR/results.json {\"summary\": [{erasure, attack, asr, asr_before, queries_to_success}], \"runs\"},\n"
    "results.md and report.html; a rerun skips the pairs done.\n"
    "erasure: every concept-erasure method (forget erase --help) erasing each class in turn, judged on the erased\n"
    "class and the others, with the bare prompt and with context words; FD and CLIP score of the kept classes in\n"
    "--clip's space; trainable parameters, the erasure's peak memory and time. DIR/results.json after every run (a\n"
    "rerun resumes), results.md, report.html (one sample grid a method).\n"
    "\n"
    "lsf: the code variants none, input and feature (reconstruction) of selective forgetting (forget lsf --help),\n"
    "--seeds seeds each with the default deletion requests; DIR/results.json after every run (a rerun resumes, each\n"
    "run from its own DIR/runs/CODE-SEED/), results.md and report.html (per-task curves, mean and spread).\n"
    "\n"
    "domain: every domain-unlearning method and ablation (forget domain --help) for every setting (fmnist-domains:\n"
    "sketch; sketch,negative; sketch,negative,painting. emoji100: line art; color) and seed, on the whole test\n"
    "split; DIR/results.json after every run (a rerun resumes), results.md (H/Mem/For, ablations, the domain\n"
    "probe, trainable parameters, peak memory, time) and report.html with the t-SNE feature map before/after ADU.\n"
    "\n"
    "bias: every debiasing method (orth-proj, orth-cali, bend-vlm, clip-clip, sfid, prompt-array, dear) and the\n"
    "calibration (OUR RECONSTRUCTION) on top of each projection, lambda and mu chosen on the validation split;\n"
    "bias (emoji: MaxSkew@K, KL@K, NDKL of gender and skin tone on neutral queries; spurious: 1 minus\n"
    "worst-group accuracy) and general knowledge (zero-shot top-1 on every class set, neighbourhoods of held-out\n"
    "words) on the test split. Writes DIR/results.json, results.md, report.html (bias reduction against retained\n"
    "general accuracy) and DIR/<method>+cal.debias.safetensors; DIR/checkpoint.json lets a stopped run resume.\n"
    "The setting defaults from the file name.\n"
    "--vocab-file: the general vocabulary, one word or phrase per line (default: 2,000 wamerican words).\n"
    "--queries: the test queries, \"phrase<TAB>attribute[,attribute]\" per line (emoji: gender, tone; spurious: tint).\n"
    "\n"
    "blackbox: serves the model on loopback (a strict server, a loose one that takes context embeddings,\n"
    "a labels-only one with --labels, and one on the test split for evaluation), forgets the first\n"
    "round(ratio x C) classes with every method at the same query budget (dirichlet, random, greedy, ga,\n"
    "bdpl, bbt, bbf, coop; --methods to choose) for --seeds seeds at --suffix-len, once more per length of\n"
    "--lengths with --length-seeds seeds, and with --labels the strict methods again through top-1 labels.\n"
    "Results go to DIR/results.json after every run (a rerun with the same DIR resumes), with the table\n"
    "DIR/results.md and DIR/report.html (H against L, H against queries). NAME is a data set with train\n"
    "and test splits: fmnist, emoji100, ...\n",
    run};

static int run_domain(int argc, char **argv) {
    DomainExperimentOpts o;
    domain_experiment_defaults(&o);
    const Opt opts[] = {
        O_STR("--model", "FILE", &o.run.model, OPT_REQUIRED, "the CLIP model"),
        opt_bind(OPT_PRECISION, &o.run.precision),
        O_STR("--dataset", "NAME", &o.run.dataset, OPT_REQUIRED, "fmnist-domains or emoji100 (a data set with domains)"),
        O_STR("--out", "DIR", &o.out, OPT_REQUIRED, "results directory (a rerun resumes from it)"),
        O_INT("--seeds", "N", &o.seeds, 1, 64, "seeds per method and setting (default 3)"),
        O_STR("--methods", "LIST", &o.methods, 0, "comma-separated methods (default: all)"),
        O_STR("--settings", "LIST", &o.settings, 0, "forget settings, ';'-separated, each a comma list of domains"),
        O_INT("--shots", "K", &o.run.shots, 1, 100000, "training images per class and domain (default 8)"),
        O_INT("--epochs", "N", &o.run.epochs, 1, 100000, "epochs of the gradient methods (default 50)"),
        O_DBL("--lr", "LR", &o.run.lr, 0, 10, 0, "AdamW learning rate (default: the method's, docs/domain.md)"),
        O_INT("--map-points", "N", &o.map_points, 0, 20000, "test images in the t-SNE map (default 1200; 0: none)"),
        O_INT("--eval-every", "N", &o.run.eval_every, 1, 100000, "epochs between validation checks (default 5)"),
        O_INT("--max-test", "N", &o.run.max_test, 1, 1 << 30, "measure on the first N test images (default: all)"),
        O_INT("--ablation-settings", "N", &o.ablation_settings, 0, 64, "run the ablations on the first N settings only"),
        opt_bind(OPT_DATA_DIR, &o.run.data_dir),
        O_END,
    };
    const int st = cli_parse(&cmd_experiment, argc, argv, 2, opts, NULL);
    if (st >= 0) return st;
    Err e = {{0}};
    if (domain_experiment_run(&o, &e) != 0) return cli_error("experiment", EXIT_WORK, "%s", e.msg);
    return 0;
}

static int run_lsf(int argc, char **argv) {
    LsfExperimentOpts o;
    lsf_experiment_defaults(&o);
    const Opt opts[] = {
        O_STR("--dataset", "NAME", &o.run.dataset, 0, "fmnist (default), emoji100, cifar100:/DIR"),
        O_STR("--out", "DIR", &o.out, OPT_REQUIRED, "results directory (a rerun resumes from it)"),
        O_INT("--seeds", "N", &o.seeds, 1, 1000, "seeds per code variant (default 5)"),
        O_STR("--codes", "LIST", &o.codes, 0, "comma-separated code variants (default none,input,feature)"),
        O_INT("--tasks", "T", &o.run.tasks, 1, 100, "tasks (default 5)"),
        O_INT("--epochs", "N", &o.run.epochs, 1, 100000, "epochs per task (default 8)"),
        O_INT("--batch", "B", &o.run.batch, 2, 4096, "images per step (default 64)"),
        O_INT("--train-per-class", "N", &o.run.train_per_class, 1, 1000000, "training images per class (default 500)"),
        O_INT("--layer", "L", &o.run.layer, -1000, 1000, "feature code layer (default 1, chosen on fmnist val)"),
        O_FLT("--kappa", "K", &o.run.kappa, 0, 1000, 0, "feature code scale (default 1)"),
        O_STR("--split", "S", &o.run.split, 0, "test (default) or val"),
        O_INT("--fisher-samples", "N", &o.run.fisher_samples, 1, 1 << 30, "images for EWC's Fisher (default 200)"),
        O_INT("--eval-per-class", "N", &o.run.eval_per_class, 0, 1 << 30, "measure on N images a class (default 0: all)"),
        O_FLT("--lwf-target", "U", &o.run.lwf_target, -1, 1, 0, "deleted classes' distillation target (default 0; -1: LSF's 1/K)"),
        O_STR("--net", "NAME", &o.run.net, 0, "resnet-20 (default) ..."),
        O_END,
    };
    const int st = cli_parse(&cmd_experiment, argc, argv, 2, opts, NULL);
    if (st >= 0) return st;
    o.run.quiet = 1;
    Err e = {{0}};
    if (lsf_experiment_run(&o, &e) != 0) return cli_error("experiment", EXIT_WORK, "%s", e.msg);
    return 0;
}

static int run_bias(int argc, char **argv) {
    BiasExperimentOpts o;
    bias_experiment_defaults(&o);
    const Opt opts[] = {
        O_STR("--model", "FILE", &o.model, OPT_REQUIRED, "the CLIP model to debias"),
        opt_bind(OPT_PRECISION, &o.precision),
        O_STR("--out", "DIR", &o.out, OPT_REQUIRED, "results directory (a rerun resumes from it)"),
        O_STR("--setting", "S", &o.setting, 0, "emoji or spurious (default: from the model's file name)"),
        O_STR("--methods", "LIST", &o.methods, 0, "comma-separated methods (default: all)"),
        opt_bind(OPT_DATA_DIR, &o.data_dir),
        O_STR("--vocab-file", "FILE", &o.vocab_file, 0, "the general vocabulary, one word or phrase per line"),
        O_STR("--queries", "FILE", &o.queries, 0, "test queries, \"phrase<TAB>attribute[,attribute]\" per line"),
        O_INT("--K", "K", &o.K, 1, 10000, "retrieval depth of MaxSkew@K and KL@K"),
        O_INT("--vocab", "N", &o.vocab, 10, 200000, "words of the default vocabulary"),
        opt_bind(OPT_SEED, &o.seed),
        opt_bind(OPT_QUIET, &o.quiet),
        O_END,
    };
    const int st = cli_parse(&cmd_experiment, argc, argv, 2, opts, NULL);
    if (st >= 0) return st;
    Err e = {{0}};
    if (bias_experiment_run(&o, &e) != 0) return cli_error("experiment", EXIT_WORK, "%s", e.msg);
    return 0;
}

static int run_blackbox(int argc, char **argv) {
    BbExperimentOpts o;
    bb_experiment_defaults(&o);
    const Opt opts[] = {
        O_STR("--model", "FILE", &o.model, OPT_REQUIRED, "the CLIP model served"),
        opt_bind(OPT_PRECISION, &o.precision),
        O_STR("--dataset", "NAME", &o.dataset, OPT_REQUIRED, "a data set with train and test splits"),
        O_STR("--out", "DIR", &o.out, OPT_REQUIRED, "results directory (a rerun resumes from it)"),
        opt_bind(OPT_DATA_DIR, &o.data_dir),
        O_DBL("--forget-ratio", "R", &o.forget_ratio, 0, 1, OPT_OPEN, "share of the classes forgotten"),
        O_INT("--seeds", "N", &o.seeds, 1, 100, "seeds per method at --suffix-len"),
        opt_bind(OPT_BB_BUDGET, &o.budget),
        opt_bind(OPT_BB_SHOTS, &o.shots),
        opt_bind(OPT_BB_SUFFIX_LEN, &o.L),
        O_STR("--lengths", "LIST", &o.lengths, 0, "suffix lengths of the length sweep"),
        O_INT("--length-seeds", "N", &o.length_seeds, 0, 100, "seeds per length"),
        O_STR("--methods", "LIST", &o.methods, 0, "comma-separated methods (default: all)"),
        O_FLAG("--labels", &o.labels, "also run the strict methods through a labels-only server"),
        opt_bind(OPT_QUIET, &o.quiet),
        O_END,
    };
    const int st = cli_parse(&cmd_experiment, argc, argv, 2, opts, NULL);
    if (st >= 0) return st;
    Err e = {{0}};
    if (bb_experiment_run(&o, &e) != 0) return cli_error("experiment", EXIT_WORK, "%s", e.msg);
    return 0;
}

static int run_pulse(int argc, char **argv) {
    PulseOpts o;
    pulse_defaults(&o);
    const char *targets = "projector+lm";
    int report_only = 0;
    const Opt opts[] = {
        O_STR("--model", "FILE", &o.model, OPT_REQUIRED, "the MLLM (forget train-mllm / zoo mllm-s)"),
        O_STR("--tokenizer", "FILE", &o.tokenizer, 0, "SentencePiece model (default: tokenizer.model beside the model)"),
        O_STR("--out", "DIR", &o.out, OPT_REQUIRED, "results directory (a rerun resumes from it)"),
        O_INT("--seeds", "N", &o.seeds, 1, 100, "seeds (each its own choice of people)"),
        O_STR("--methods", "LIST", &o.methods, 0, "comma-separated methods (default ga,ga+kl,gd,npo,idk,mmunlearner)"),
        O_INT("--forget-count", "N", &o.forget_count, 1, 100, "people forgotten from each set"),
        O_INT("--val-count", "N", &o.val_count, 1, 100, "validation people of each set (the selection's)"),
        O_INT("--chunks", "S", &o.chunks, 1, 100, "sequential requests the forget people are split into"),
        O_STR("--lrs", "LIST", &o.lrs, 0, "learning-rate grid, ascending"),
        O_INT("--max-epochs", "N", &o.max_epochs, 1, 1000, "most epochs any setting may take"),
        O_INT("--batch", "B", &o.batch, 1, 32, "forget (and retain) sequences a step"),
        O_DBL("--target", "ACC", &o.target, 0, 1, 0, "validation 4-choice accuracy a setting must reach"),
        O_INT("--lora-rank", "R", &o.lora_rank, 0, 1024, "LoRA rank (0: the weights themselves)"),
        O_FLT("--lora-alpha", "A", &o.lora_alpha, 0, 1e6, OPT_OPEN, "LoRA alpha"),
        O_STR("--targets", "PARTS", &targets, 0, "where the adapters go: projector+lm, lm or projector"),
        O_INT("--retain-limit", "N", &o.retain_limit, 0, 1 << 30, "retain questions measured (0: all)"),
        O_INT("--general-limit", "N", &o.general_limit, 0, 1 << 30, "general benchmark questions measured (0: all)"),
        O_INT("--reference-epochs", "N", &o.ref_epochs, 1, 100, "npo reference: passes over the retain questions"),
        O_FLAG("--sequential-both", &o.sequential_both, "scenario 2 on set B as well"),
        O_FLAG("--report-only", &report_only, "rewrite results.md and report.html from DIR/results.json"),
        O_LONG("--stop-after", "N", &o.stop_after_ops, 0, 1L << 40, "stop after N operations, as if killed (tests)"),
        opt_bind(OPT_QUIET, &o.quiet),
        O_END,
    };
    const int st = cli_parse(&cmd_experiment, argc, argv, 2, opts, NULL);
    if (st >= 0) return st;
    Err e = {{0}};
    if (ul_parts_parse(targets, &o.parts, &e)) return cli_error("experiment", EXIT_USAGE, "%s", e.msg);
    const int rc = report_only ? pulse_report(o.out, &e) : pulse_run(&o, &e);
    if (rc < 0) return cli_error("experiment", EXIT_WORK, "%s", e.msg);
    if (rc > 0) fprintf(stderr, "experiment pulse: stopped after %ld operations; rerun to resume\n", o.stop_after_ops);
    return 0;
}

static int run(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "pulse") == 0) return run_pulse(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "bias") == 0) return run_bias(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "erasure") == 0) return experiment_erasure(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "redteam") == 0) return experiment_redteam(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "domain") == 0) return run_domain(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "lsf") == 0) return run_lsf(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "blackbox") == 0) return run_blackbox(argc, argv);
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(cmd_experiment.help, stdout);
        return 0;
    }
    return cli_error("experiment", EXIT_USAGE, "which experiment? (forget experiment blackbox|bias|domain|lsf|erasure|redteam|pulse; forget help experiment)");
}
