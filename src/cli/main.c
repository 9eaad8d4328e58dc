/* forget: make multimodal models selectively forget, and measure it honestly. */
#include <malloc.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "core/threads.h"

extern const Command cmd_tokenize, cmd_embed, cmd_preprocess, cmd_classify, cmd_info, cmd_convert, cmd_init,
    cmd_train, cmd_eval, cmd_zoo, cmd_serve, cmd_blackbox, cmd_experiment, cmd_debias, cmd_bench, cmd_verify, cmd_datasets, cmd_domain, cmd_lsf, cmd_train_diffusion, cmd_train_vae, cmd_train_judge, cmd_train_mllm, cmd_chat, cmd_generate, cmd_erase, cmd_attack, cmd_redteam, cmd_unlearn;

static const Command *const commands[] = {&cmd_tokenize, &cmd_embed,   &cmd_preprocess, &cmd_classify,
                                          &cmd_info,     &cmd_convert, &cmd_init,       &cmd_train,
                                          &cmd_eval,     &cmd_zoo,     &cmd_serve,    &cmd_blackbox, &cmd_experiment, &cmd_debias, &cmd_bench, &cmd_verify, &cmd_datasets, &cmd_domain, &cmd_lsf, &cmd_train_diffusion, &cmd_train_vae, &cmd_train_judge, &cmd_train_mllm, &cmd_chat, &cmd_generate, &cmd_erase, &cmd_attack, &cmd_redteam, &cmd_unlearn};
static const int n_commands = (int)(sizeof commands / sizeof *commands);

const Command *cli_find(const char *name) {
    for (int i = 0; i < n_commands; i++)
        if (strcmp(commands[i]->name, name) == 0) return commands[i];
    return NULL;
}

void cli_list(FILE *f) {
    fprintf(f, "usage: forget COMMAND [options]   (forget help COMMAND, or COMMAND --help)\n\ncommands:\n");
    for (int i = 0; i < n_commands; i++) fprintf(f, "  %-11s %s\n", commands[i]->name, commands[i]->summary);
    fprintf(f, "\nevery command takes --threads N (default: all cores) and --help\n");
}

int main(int argc, char **argv) {
    /* Training and batched encoding allocate and free the same large activation buffers every
     * step: keep them in the heap (mmap threshold at glibc's 32 MiB maximum, no trimming) instead
     * of returning them to the kernel and faulting them back in, which cost half the time. */
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    threads_set(0);
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        cli_list(argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : 0;
    }
    if (strcmp(argv[1], "help") == 0) {
        if (argc < 3) {
            cli_list(stdout);
            return 0;
        }
        const Command *c = cli_find(argv[2]);
        if (!c) return cli_error("help", EXIT_USAGE, "no command \"%s\" (forget help lists them)", argv[2]);
        char *args[] = {argv[2], "--help", NULL}; /* the command's own --help: its options from its table */
        return c->run(2, args);
    }
    const Command *c = cli_find(argv[1]);
    if (!c) {
        fprintf(stderr, "forget: no command \"%s\"\n\n", argv[1]);
        cli_list(stderr);
        return EXIT_USAGE;
    }
    return c->run(argc - 1, argv + 1);
}
