# Shoal - one build for everything. See README.md.
#
#   make                         build every binary, example and test into build/
#   make run                     install missing packages, build, start the platform (shoal up)
#   make test                    install missing packages, build, run every test, print a summary
#   make bench                   run the benchmarks (results under bench/results/)
#   make demo                    encode real footage with the video pipeline (out/video/)
#   make SANITIZE=address,undefined [test]   the same tree with sanitizers, in build-san/
#   make CC=clang                any C11 compiler; warnings are errors
#
# Every module directory holds one program's sources; its main.c holds main() and everything
# else is also linked into that module's unit tests (tests/<module>/test_*.c).

CC ?= cc
ifeq ($(SANITIZE),)
BUILD ?= build
SANFLAGS :=
else
BUILD ?= build-san
SANFLAGS := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
endif

# pkg-config runs lazily (recursive variables) so that `make test` can install the packages
# before anything asks for their flags.
PKGS = libh2o libuv jansson liburing libcurl libseccomp sqlite3 hiredis
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

OPT ?= -O2
CFLAGS_ALL = -std=c11 -D_GNU_SOURCE -DH2O_USE_LIBUV=1 $(OPT) -g -Wall -Wextra -Werror \
	-Wno-missing-field-initializers -MMD -MP -I. -Iinclude $(PKG_CFLAGS) $(SANFLAGS) $(CFLAGS)
LDFLAGS_ALL = $(SANFLAGS) $(LDFLAGS)
LIBS_ALL = $(PKG_LIBS) -lssl -lcrypto -lpthread -ldl -lm

COMMON_SRC := $(wildcard common/*.c transport/*.c)
COMMON_OBJ := $(COMMON_SRC:%.c=$(BUILD)/obj/%.o)

module_src = $(filter-out $(1)/main.c,$(wildcard $(1)/*.c))
module_obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(call module_src,$(1)))

PROGRAMS := controller worker runtime cli
BINS := $(BUILD)/shoal-controller $(BUILD)/shoal-worker $(BUILD)/shoal-runtime $(BUILD)/shoal

EXAMPLES := $(filter-out video,$(notdir $(wildcard examples/*)))
EXAMPLE_SOS := $(foreach e,$(EXAMPLES),$(if $(wildcard examples/$(e)/$(e).c),$(BUILD)/examples/$(e).so))

TEST_SRC := $(wildcard tests/*/test_*.c)
TEST_BINS := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
# tests/e2e/fn_<name>.c are functions the e2e tests deploy: BUILD/tests/e2e/fn_<name>.so.
TEST_FN_SRC := $(wildcard tests/e2e/fn_*.c)
TEST_FN_SOS := $(TEST_FN_SRC:%.c=$(BUILD)/%.so)
TEST_SUPPORT_SRC := $(filter-out $(wildcard tests/e2e/test_*.c) $(TEST_FN_SRC),$(wildcard tests/e2e/*.c))
TEST_SUPPORT_OBJ := $(TEST_SUPPORT_SRC:%.c=$(BUILD)/obj/%.o)

BENCH_SRC := $(wildcard bench/*/*.c)
BENCH_BINS := $(BENCH_SRC:%.c=$(BUILD)/%)
# Functions the benchmarks deploy: bench/<name>/fn/<fn>.c -> BUILD/bench/<name>/fn/<fn>.so
BENCH_FN_SRC := $(wildcard bench/*/fn/*.c)
BENCH_FN_SOS := $(BENCH_FN_SRC:%.c=$(BUILD)/%.so)

.PHONY: all deps run test bench clean format fuzz demo
all: $(BINS) $(EXAMPLE_SOS) $(TEST_BINS) $(BENCH_BINS) $(BENCH_FN_SOS) $(TEST_FN_SOS)

deps:
	@scripts/install-deps.sh

run: deps
	@$(MAKE) --no-print-directory all
	@scripts/run.sh $(BUILD)

test: deps
	@$(MAKE) --no-print-directory all
	@tests/run.sh $(BUILD)

bench: deps
	@$(MAKE) --no-print-directory all
	@bench/run.sh $(BUILD)

# The video pipeline on real footage: renditions in out/video/ and a table (scripts/demo.sh).
demo: deps
	@$(MAKE) --no-print-directory all
	@scripts/demo.sh $(BUILD)

clean:
	rm -rf build build-san build-clang build-fuzz

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

$(BUILD)/obj/controller/header_blob.o: controller/header_blob.S include/shoal.h
	@mkdir -p $(dir $@)
	$(CC) -c $< -o $@

$(BUILD)/libshoal.a: $(COMMON_OBJ)
	@rm -f $@
	ar rcs $@ $^

define module_lib
$$(BUILD)/lib$(1).a: $$(call module_obj,$(1)) $(2)
	@rm -f $$@
	ar rcs $$@ $$^
endef
$(eval $(call module_lib,controller,$(BUILD)/obj/controller/header_blob.o))
$(eval $(call module_lib,worker))
$(eval $(call module_lib,runtime))
$(eval $(call module_lib,cli))

$(BUILD)/shoal-controller: $(BUILD)/obj/controller/main.o $(BUILD)/libcontroller.a $(BUILD)/libshoal.a
	$(CC) $(LDFLAGS_ALL) $^ $(LIBS_ALL) -o $@

$(BUILD)/shoal-worker: $(BUILD)/obj/worker/main.o $(BUILD)/libworker.a $(BUILD)/libshoal.a
	$(CC) $(LDFLAGS_ALL) $^ $(LIBS_ALL) -o $@

# The runtime exports the shoal.h API from the executable so that dlopen'd functions bind to it.
$(BUILD)/shoal-runtime: $(BUILD)/obj/runtime/main.o $(BUILD)/libruntime.a $(BUILD)/libshoal.a runtime/exports.list
	$(CC) $(LDFLAGS_ALL) -Wl,--dynamic-list=runtime/exports.list $(BUILD)/obj/runtime/main.o \
		-Wl,--whole-archive $(BUILD)/libruntime.a -Wl,--no-whole-archive $(BUILD)/libshoal.a \
		$(LIBS_ALL) -o $@

$(BUILD)/shoal: $(BUILD)/obj/cli/main.o $(BUILD)/libcli.a $(BUILD)/libshoal.a
	$(CC) $(LDFLAGS_ALL) $^ $(LIBS_ALL) -o $@

# Example functions: built exactly as a user would, against include/shoal.h only. Functions are
# not sanitized: the runtime that loads them may be.
define example_rule
$(BUILD)/examples/$(1).so: examples/$(1)/$(1).c include/shoal.h
	@mkdir -p $$(dir $$@)
	$$(CC) -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -shared -fPIC -Iinclude $$< -o $$@
endef
$(foreach e,$(EXAMPLES),$(eval $(call example_rule,$(e))))

$(BUILD)/bench/%.so: bench/%.c include/shoal.h
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -shared -fPIC -Iinclude $< -o $@

$(BUILD)/tests/e2e/fn_%.so: tests/e2e/fn_%.c include/shoal.h
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -shared -fPIC -Iinclude $< -o $@

# Unit tests link their module's library; end-to-end tests link the e2e harness.
test_deps = $(if $(filter e2e,$(1)),$(TEST_SUPPORT_OBJ),$(if $(filter common transport,$(1)),,$(BUILD)/lib$(1).a))
define test_rule
$(BUILD)/$(basename $(1)): $(1) $(call test_deps,$(word 2,$(subst /, ,$(1)))) $(BUILD)/libshoal.a
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS_ALL) $$(LDFLAGS_ALL) $$< $(call test_deps,$(word 2,$(subst /, ,$(1)))) $(BUILD)/libshoal.a $$(LIBS_ALL) -lcmocka -o $$@
endef
$(foreach t,$(TEST_SRC),$(eval $(call test_rule,$(t))))

$(BUILD)/bench/%: bench/%.c $(BUILD)/libshoal.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(LDFLAGS_ALL) $< $(BUILD)/libshoal.a $(LIBS_ALL) -o $@

# The video example (issue 4): its function links libvpx and libav* itself; its modules also form
# build/libvideo.a for the baseline program and the video unit tests.
VIDEO_PKGS = libavformat libavcodec libswscale libavutil vpx jansson
VIDEO_CFLAGS = $(shell pkg-config --cflags $(VIDEO_PKGS) 2>/dev/null)
VIDEO_LIBS = $(shell pkg-config --libs $(VIDEO_PKGS) 2>/dev/null) -lm
VIDEO_SRC := $(filter-out examples/video/video_abr.c,$(wildcard examples/video/*.c))
VIDEO_OBJ := $(VIDEO_SRC:%.c=$(BUILD)/obj/%.o)
$(VIDEO_OBJ): CFLAGS_ALL += $(VIDEO_CFLAGS)

$(BUILD)/libvideo.a: $(VIDEO_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/examples/video-abr.so: examples/video/video_abr.c $(VIDEO_SRC) $(wildcard examples/video/*.h) include/shoal.h
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -Wno-missing-field-initializers \
		-shared -fPIC -fvisibility=hidden -Iinclude $(VIDEO_CFLAGS) \
		examples/video/video_abr.c $(VIDEO_SRC) -Wl,--as-needed $(VIDEO_LIBS) -o $@

$(BUILD)/bench/video/baseline: bench/video/baseline.c $(BUILD)/libvideo.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(VIDEO_CFLAGS) $(LDFLAGS_ALL) $< $(BUILD)/libvideo.a $(VIDEO_LIBS) -o $@

$(BUILD)/tests/video/%: CFLAGS_ALL += $(VIDEO_CFLAGS)
$(BUILD)/tests/video/%: LIBS_ALL += $(VIDEO_LIBS)
# The end-to-end video test checks the function's answers with the example's decoder and PSNR.
$(BUILD)/tests/e2e/test_video: $(BUILD)/libvideo.a
$(BUILD)/tests/e2e/test_video: CFLAGS_ALL += $(VIDEO_CFLAGS)
$(BUILD)/tests/e2e/test_video: LIBS_ALL += $(BUILD)/libvideo.a $(VIDEO_LIBS)

all: $(BUILD)/examples/video-abr.so

# Fuzzing: every tests/fuzz/fuzz_<name>.c is a libFuzzer target built with clang, ASan and UBSan,
# linked with the module sources listed in FUZZ_LINK_<name>; `make fuzz` runs each for
# FUZZ_SECONDS from its seed corpus tests/fuzz/corpus/<name>/ and prints executions and findings.
FUZZ_SECONDS ?= 60
FUZZ_BUILD := build-fuzz
FUZZ_CFLAGS = -std=c11 -D_GNU_SOURCE -DH2O_USE_LIBUV=1 -O1 -g -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=all -I. -Iinclude $(PKG_CFLAGS)
FUZZ_TARGETS := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_LINK_frame := transport/frame.c transport/invmeta.c
FUZZ_LINK_elf := controller/elf.c
FUZZ_LINK_ring := transport/ring.c transport/channel.c transport/arena.c common/util.c common/trace.c
FUZZ_LIBS_ring := -lcrypto
FUZZ_LINK_query := controller/api.c controller/json.c common/util.c common/trace.c
FUZZ_LIBS_query := -lcrypto
FUZZ_LINK_peer := worker/peer.c transport/arena.c common/secret.c common/util.c common/trace.c
FUZZ_LIBS_peer := -luring -luv -lcrypto
FUZZ_LINK_hcoll := transport/hcoll.c transport/coll.c transport/arena.c common/util.c common/trace.c
FUZZ_LIBS_hcoll := -lcrypto
FUZZ_LINK_link := transport/link.c common/util.c common/trace.c
FUZZ_LIBS_link := -lcrypto

fuzz: deps
	@$(MAKE) --no-print-directory $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)
	@tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

.SECONDEXPANSION:
$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $$(FUZZ_LINK_$$*)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) $(filter %.c,$^) $(FUZZ_LIBS_$*) -o $@

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
