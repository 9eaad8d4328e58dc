#include <stdio.h>

#include "cli/cli.h"
#include "io/dataset.h"

static int run(int argc, char **argv);

const Command cmd_datasets = {
    "datasets", "the data sets forget loads by name (--dataset NAME:SPLIT)",
    "usage: forget datasets\n"
    "\n"
    "Lists the data-set registry: each name, its splits and where its files come from.\n"
    "Every command that takes --dataset NAME:SPLIT looks the name up here.\n",
    run};

static int run(int argc, char **argv) {
    const Opt opts[] = {O_END};
    const int st = cli_parse(&cmd_datasets, argc, argv, 1, opts, NULL);
    if (st >= 0) return st;
    int n;
    const DatasetEntry *r = dataset_registry(&n);
    for (int i = 0; i < n; i++) printf("%-16s %-16s %s\n", r[i].name, r[i].splits, r[i].summary);
    return 0;
}
