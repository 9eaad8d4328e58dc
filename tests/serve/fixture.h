/* The black-box API on loopback for tests: the tiny reference model serving Fashion-MNIST's
 * test split with the given options (model and dataset filled in). NULL, with the failure
 * recorded, when it cannot start; url receives "http://127.0.0.1:PORT". */
#ifndef FORGET_TEST_SERVE_FIXTURE_H
#define FORGET_TEST_SERVE_FIXTURE_H

#include <stddef.h>

#include "serve/server.h"

BbServer *tiny_server(ServerOpts o, char *url, size_t cap);

#endif
