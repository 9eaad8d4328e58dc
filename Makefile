# forget: build, test, bench.
#   make            bin/forget
#   make test       the whole suite (ends with "N passed, N failed"); SAN=1 for ASan+UBSan
#   make bench      throughput against the machine's own sgemm peak (and PyTorch when installed)
#   make fuzz       libFuzzer targets, FUZZ_SECONDS each (clang)

CC      ?= gcc
SAN     ?= 0
BUILD   := build/$(if $(filter 1,$(SAN)),san,rel)
BIN     := bin
PKGS    := libxxhash glib-2.0 libcjson libpcre2-8 icu-uc libpng zlib ompi-c freetype2 harfbuzz libxml-2.0 libmicrohttpd libcurl

CFLAGS_BASE := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -fopenmp -Isrc -Itests -MMD -MP
ifeq ($(SAN),1)
  CFLAGS_OPT := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
  LDFLAGS_SAN := -fsanitize=address,undefined
  BIN := bin/san
else
  CFLAGS_OPT := -O2 -g -fvect-cost-model=dynamic -fno-trapping-math
endif
# The one C++ file is the face of libsentencepiece, which has no C API (src/io/sp_tokenizer.cc).
CXX     ?= g++
CXXFLAGS += -std=c++17 -D_GNU_SOURCE -Wall -Wextra -Werror -Isrc -MMD -MP $(CFLAGS_OPT)
CFLAGS  += $(CFLAGS_BASE) $(CFLAGS_OPT) $(shell pkg-config --cflags ompi-c freetype2 harfbuzz libxml-2.0 2>/dev/null)
LDLIBS  += -lsentencepiece -lsentencepiece_train -lstdc++ -ldnnl -ljpeg -llapacke -lm $(shell pkg-config --libs $(PKGS) 2>/dev/null)
LDFLAGS += -fopenmp $(LDFLAGS_SAN)

LIB_SRC  := $(shell find src -name '*.c' ! -path 'src/cli/*' | sort)
LIB_ASM  := $(shell find src -name '*.S' | sort)
LIB_CXX  := $(shell find src -name '*.cc' | sort)
CLI_SRC  := $(shell find src/cli -name '*.c' | sort)
TEST_SRC := $(shell find tests -name '*.c' | sort)

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o) $(LIB_ASM:%.S=$(BUILD)/%.o) $(LIB_CXX:%.cc=$(BUILD)/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/%.o)
DEPS_OK  := build/.deps-ok

.PHONY: all test unit bench bench-load demo fuzz clean deps
all: $(BIN)/forget

deps: $(DEPS_OK)
$(DEPS_OK): scripts/ensure-deps.sh
	@bash scripts/ensure-deps.sh
	@mkdir -p build && touch $@

$(BUILD)/%.o: %.c | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/%.o: %.cc | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -c $< -o $@

# The BPE merges file is embedded with .incbin; rebuild when it changes.
$(BUILD)/src/io/embedded_data.o: src/io/embedded_data.S data/bpe_simple_vocab_16e6.txt.gz | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) -c $< -o $@ -Wa,-I. -I.

$(BUILD)/libforget.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BIN)/forget: $(CLI_OBJ) $(BUILD)/libforget.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

# The tests link the command-line layer too (all but its main), to test the option parser directly.
CLI_LIB_OBJ := $(filter-out $(BUILD)/src/cli/main.o,$(CLI_OBJ))
$(BIN)/forget-tests: $(TEST_OBJ) $(CLI_LIB_OBJ) $(BUILD)/libforget.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

# Tests run from the repository root; the reference vectors live in ../shared/clip-ref.
# `make test` runs everything (release, sanitizers, fuzz smoke); `make test SAN=1` only the sanitizer suite;
# `make unit` only the release suite (the quick loop while developing).
ifeq ($(SAN),1)
test: $(BIN)/forget-tests $(BIN)/forget
	LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp FORGET_BIN=$(BIN)/forget ./$(BIN)/forget-tests $(TESTS)
else
test: $(DEPS_OK)
	@bash scripts/test-all.sh
endif

unit: $(BIN)/forget-tests $(BIN)/forget
	FORGET_BIN=$(BIN)/forget ./$(BIN)/forget-tests $(TESTS)

bench: $(BIN)/forget
	@bash bench/run.sh $(BIN)/forget

# The server's full load test: 10,000 requests from 8 clients, a quarter bad (the suite sends 2,000).
bench-load: $(BIN)/forget-tests
	FORGET_LOAD_REQUESTS=10000 ./$(BIN)/forget-tests server_load_test

# The main job: black-box forgetting of 4 Fashion-MNIST classes through the API (scripts/demo.sh).
demo: $(BIN)/forget
	@bash scripts/demo.sh $(BIN)/forget

FUZZ_SECONDS ?= 60
fuzz: $(DEPS_OK)
	@FUZZ_SECONDS=$(FUZZ_SECONDS) bash scripts/fuzz.sh

clean:
	rm -rf build bin

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(TEST_OBJ:.o=.d)
