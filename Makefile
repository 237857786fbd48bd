# uqlua: Lua 5.4 + the uqpay module. `make help` lists the targets.
PREFIX  ?= /usr/local
DESTDIR ?=
CC      ?= cc
PKGS     = lua5.4 libcurl libmicrohttpd libedit libcrypto
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
# Only Lua is linked: src/lazy*.c open libcurl, libmicrohttpd, libcrypto and
# libedit on first use (each costs start-up time that most runs never need)
PKG_LIBS   := $(shell pkg-config --libs lua5.4 2>/dev/null)
OPT     ?= -O2 -g
WARN     = -Wall -Wextra -Wno-unused-parameter -fvisibility=hidden
CFLAGS_ALL = $(OPT) $(WARN) -std=gnu11 -fPIC -D_GNU_SOURCE -Isrc -I$(B) $(PKG_CFLAGS) $(EXTRA_CFLAGS)
LDLIBS_ALL = $(PKG_LIBS) -ldl -lpthread -lm

# B is the build directory: build/ normally, build-asan/ for `make check`.
B ?= build

CORE = money json errors class lazy lazy_crypto http url sys sim journal operation embed module
BIN_ONLY = main docall options host repl lazy_edit
LUA_SRC := $(shell find lua -name '*.lua' | LC_ALL=C sort)

CORE_OBJ = $(CORE:%=$(B)/%.o) $(B)/embedded.o
BIN_OBJ  = $(BIN_ONLY:%=$(B)/%.o) $(CORE_OBJ)

.PHONY: all deps asan test check chaos fuzz demo bench docs install uninstall clean help
all: uqlua uqpay.so

help:
	@echo "make            build ./uqlua and ./uqpay.so"
	@echo "make demo       install deps, build, run examples/fund-and-recharge.lua against --sim"
	@echo "make test       install deps, build, run every test on the normal and the sanitizer build;"
	@echo "                ends with 'N passed, N failed'"
	@echo "make check      the test suite under AddressSanitizer + UndefinedBehaviorSanitizer only"
	@echo "make chaos      long runs: the exactly-once chaos test (CHAOS_SEED=N replays one),"
	@echo "                resume memory at 200,000 journaled writes"
	@echo "make fuzz       libFuzzer over the JSON, money, journal, URL, redaction and CSV parsers"
	@echo "                (FUZZ_SECONDS=60 per target; regressions in tests/fuzz/regress/ first)"
	@echo "make bench      benchmarks, figures side by side"
	@echo "make docs       regenerate the endpoint reference in docs/api.md"
	@echo "make install    PREFIX=$(PREFIX) DESTDIR=..."

deps:
	@sh scripts/deps.sh

$(B):
	@mkdir -p $(B)

$(B)/embedded.c: $(LUA_SRC) scripts/embed.sh | $(B)
	sh scripts/embed.sh lua $@

$(B)/%.o: src/%.c $(wildcard src/*.h) | $(B)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

$(B)/embedded.o: $(B)/embedded.c src/embed.h
	$(CC) $(CFLAGS_ALL) -c $< -o $@

$(B)/uqlua: $(BIN_OBJ)
	$(CC) $(OPT) $(EXTRA_CFLAGS) -Wl,-E -o $@ $^ -l:liblua5.4-cjson.a $(LDLIBS_ALL)

$(B)/uqpay.so: $(CORE_OBJ)
	$(CC) $(OPT) $(EXTRA_CFLAGS) -shared -o $@ $^ $(filter-out -llua5.4,$(LDLIBS_ALL))

# C-level tests (tests/c/), run by tests/run.sh beside each build's uqlua
$(B)/test_random: tests/c/random_fork.c $(B)/sys.o $(B)/errors.o $(B)/class.o $(B)/lazy.o $(B)/lazy_crypto.o
	$(CC) $(CFLAGS_ALL) -o $@ $^ $(LDLIBS_ALL)

uqlua: $(B)/uqlua
	@rm -f $@ && cp $< $@

uqpay.so: $(B)/uqpay.so
	@rm -f $@ && cp $< $@

SANITIZE = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
SAN_ENV  = ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

asan: deps
	@$(MAKE) --no-print-directory B=build-asan OPT="-O1 -g" EXTRA_CFLAGS="$(SANITIZE)" \
	  build-asan/uqlua build-asan/uqpay.so

# Every suite on the normal build and again under ASan+UBSan (leaks too).
test: deps
	@$(MAKE) --no-print-directory all asan build/test_random
	@$(MAKE) --no-print-directory B=build-asan OPT="-O1 -g" EXTRA_CFLAGS="$(SANITIZE)" build-asan/test_random
	@$(SAN_ENV) sh tests/run.sh ./uqlua build-asan/uqlua

# The sanitizer run alone.
check: deps
	@$(MAKE) --no-print-directory all asan
	@$(MAKE) --no-print-directory B=build-asan OPT="-O1 -g" EXTRA_CFLAGS="$(SANITIZE)" build-asan/test_random
	@$(SAN_ENV) sh tests/run.sh build-asan/uqlua

# The long runs: tests/integration/chaos.lua at length (make test runs a
# short one) and resume memory at 200,000 journaled writes (tests/long/).
chaos: deps
	@$(MAKE) --no-print-directory all
	@d=$$(mktemp -d) && export XDG_STATE_HOME=$$d/state XDG_CACHE_HOME=$$d/cache XDG_CONFIG_HOME=$$d/config && \
	  ./uqlua tests/integration/chaos.lua ./uqlua long && ./uqlua tests/long/resume_memory.lua ./uqlua; \
	  rc=$$?; rm -rf $$d; exit $$rc

# libFuzzer (clang): one harness, tests/fuzz/fuzz.c, built per target over
# the core objects; each target first replays its regressions, then runs
# FUZZ_SECONDS on its corpus (tests/fuzz/corpus/T, grown in build-fuzz/).
FUZZ_TARGETS = json money journal url redact csv
FUZZ_SECONDS ?= 60
FUZZ_SAN = -fsanitize=address,undefined -fno-sanitize-recover=undefined
fuzz: deps
	@sh scripts/deps.sh clang libclang-rt-14-dev
	@$(MAKE) --no-print-directory B=build-fuzz CC=clang OPT="-O1 -g" \
	  EXTRA_CFLAGS="-fsanitize=fuzzer-no-link $(FUZZ_SAN)" $(CORE_OBJ:$(B)/%=build-fuzz/%)
	@set -e; for t in $(FUZZ_TARGETS); do \
	  clang -O1 -g -fsanitize=fuzzer $(FUZZ_SAN) -Isrc -Ibuild-fuzz $(PKG_CFLAGS) -DTARGET=\"$$t\" \
	    tests/fuzz/fuzz.c $(CORE_OBJ:$(B)/%=build-fuzz/%) $(LDLIBS_ALL) -o build-fuzz/fuzz-$$t; \
	  mkdir -p build-fuzz/corpus-$$t tests/fuzz/regress/$$t; \
	  if [ -n "$$(ls tests/fuzz/regress/$$t)" ]; then build-fuzz/fuzz-$$t tests/fuzz/regress/$$t/*; fi; \
	  echo "== fuzz $$t ($(FUZZ_SECONDS) s)"; \
	  build-fuzz/fuzz-$$t -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 -artifact_prefix=build-fuzz/crash-$$t- \
	    build-fuzz/corpus-$$t tests/fuzz/corpus/$$t >build-fuzz/fuzz-$$t.log 2>&1 \
	    || { tail -n 40 build-fuzz/fuzz-$$t.log; echo "fuzz $$t: finding in build-fuzz/crash-$$t-*;" \
	         "add it to tests/fuzz/regress/$$t/ with the fix"; exit 1; }; \
	  grep -E "stat::(number_of_executed_units|new_units_added)" build-fuzz/fuzz-$$t.log; \
	done

docs: all
	./uqlua scripts/gen-api-doc.lua --write

demo: deps
	@$(MAKE) --no-print-directory all
	./uqlua --sim examples/fund-and-recharge.lua

bench: deps
	@sh scripts/deps.sh uuid-runtime
	@$(MAKE) --no-print-directory all
	@sh scripts/bench.sh ./uqlua

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 \
	  $(DESTDIR)$(PREFIX)/lib/lua/5.4
	install -m 0755 uqlua $(DESTDIR)$(PREFIX)/bin/uqlua
	install -m 0644 uqpay.so $(DESTDIR)$(PREFIX)/lib/lua/5.4/uqpay.so
	install -m 0644 docs/uqlua.1 $(DESTDIR)$(PREFIX)/share/man/man1/uqlua.1

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/uqlua $(DESTDIR)$(PREFIX)/lib/lua/5.4/uqpay.so \
	  $(DESTDIR)$(PREFIX)/share/man/man1/uqlua.1

clean:
	rm -rf build build-asan build-fuzz uqlua uqpay.so
