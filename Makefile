# Build, test and demo the diode-tx / diode-rx pair.
CC       ?= cc
CFLAGS   ?= -O2 -g
PREFIX   ?= /usr/local
BUILD    ?= build

PKGS      = libsodium libuv libisal libcrypto libseccomp libmosquitto
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CMOCKA_LIBS := $(shell pkg-config --libs cmocka 2>/dev/null)

WARN     = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wno-unused-parameter
HARDEN   = -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fPIE
DD_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) $(HARDEN) -MMD -MP -Icommon \
            $(PKG_CFLAGS)
DD_LDFLAGS = -pie -Wl,-z,relro,-z,now
ifeq ($(WERROR),1)
DD_CFLAGS += -Werror
endif
ifeq ($(SANITIZE),1)
DD_CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer \
             -fno-sanitize-recover=undefined
DD_LDFLAGS += -fsanitize=address,undefined
BUILD := build-san
endif

COMMON_SRC = $(wildcard common/*.c)
COMMON_OBJ = $(COMMON_SRC:%.c=$(BUILD)/%.o)
TX_SRC     = $(wildcard tx/*.c)
TX_OBJ     = $(TX_SRC:%.c=$(BUILD)/%.o)
RX_SRC     = $(wildcard rx/*.c)
RX_OBJ     = $(RX_SRC:%.c=$(BUILD)/%.o)
TEST_SRC   = $(wildcard tests/test_*.c)
TEST_BIN   = $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
TOOL_SRC   = $(wildcard tests/tools/*.c)
TOOL_BIN   = $(TOOL_SRC:tests/tools/%.c=$(BUILD)/%)
LIB        = $(BUILD)/libdiode.a
BINS       = $(BUILD)/diode-tx $(BUILD)/diode-rx $(BUILD)/diode-keygen

.PHONY: all test unit integration demo bench fuzz fuzz-build install clean deps sanitize lint \
	check-units

all: $(BINS) $(TOOL_BIN)

deps:
	@scripts/install-deps

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(DD_CFLAGS) $(CFLAGS) -c $< -o $@

$(LIB): $(COMMON_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/diode-tx: $(TX_OBJ) $(LIB)
	$(CC) $(DD_LDFLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) -lm

$(BUILD)/diode-rx: $(RX_OBJ) $(LIB)
	$(CC) $(DD_LDFLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) -lm

$(BUILD)/diode-keygen: $(BUILD)/keygen/main.o $(LIB)
	$(CC) $(DD_LDFLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) -lm

$(BUILD)/%: $(BUILD)/tests/tools/%.o $(LIB)
	$(CC) $(DD_LDFLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) -lm

$(BUILD)/tests/test_%: $(BUILD)/tests/test_%.o $(LIB)
	$(CC) $(DD_LDFLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(CMOCKA_LIBS) -lm

# diode-rx's disk thread (rx/disk.c), against a stand-in for the reassembler.
$(BUILD)/tests/test_disk: $(BUILD)/tests/test_disk.o $(BUILD)/rx/disk.o $(LIB)
	$(CC) $(DD_LDFLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(CMOCKA_LIBS) -lm

# Unit tests: one cmocka program per common module.
unit: $(TEST_BIN)
	@fail=0; for t in $(TEST_BIN); do \
	  echo "== $$t"; $$t || fail=1; done; exit $$fail

# Integration tests: both daemons on loopback.
integration: all
	@BUILD=$(BUILD) tests/integration/run-all

test: deps
	@$(MAKE) --no-print-directory all $(TEST_BIN)
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory integration

# Benchmarks report figures (build/bench.json); they never fail the build.
bench: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) scripts/bench || true

demo: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) scripts/demo

# libFuzzer harnesses (clang): one per parser of outside bytes. Seeds live in
# tests/fuzz/corpus/NAME; new inputs go to build-fuzz/corpus/NAME.
FUZZ_SRC     = $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN     = $(FUZZ_SRC:tests/fuzz/%.c=build-fuzz/%)
FUZZ_SECONDS ?= 30
FUZZ_CFLAGS  = -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
               -std=c11 -D_GNU_SOURCE -Icommon $(PKG_CFLAGS)

build-fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(COMMON_SRC) $(wildcard common/*.h)
	@mkdir -p build-fuzz
	clang $(FUZZ_CFLAGS) $< $(COMMON_SRC) -o $@ $(PKG_LIBS) -lm

fuzz-build: deps
	@$(MAKE) --no-print-directory $(FUZZ_BIN)

fuzz: fuzz-build
	@for f in $(FUZZ_BIN); do \
	  name=$${f#build-fuzz/fuzz_}; mkdir -p build-fuzz/corpus/$$name; \
	  echo "== fuzz $$name for $(FUZZ_SECONDS) s"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=0 -close_fd_mask=3 \
	    build-fuzz/corpus/$$name tests/fuzz/corpus/$$name > build-fuzz/$$name.log 2>&1 \
	    || { tail -n 40 build-fuzz/$$name.log; echo "fuzz $$name FAILED"; exit 1; }; \
	  grep -E '^(Done|#[0-9]+.*DONE)' build-fuzz/$$name.log | tail -n 1; \
	done

# ASan + UBSan build in build-san, unit and integration tests with it.
sanitize:
	@$(MAKE) --no-print-directory test SANITIZE=1

# Static analysis of the project's code (common/ tx/ rx/ keygen/): cppcheck,
# then clang-tidy with a curated set of checks (the clang static analyzer,
# bug-prone patterns, CERT C). Any finding fails. Left out, as they only
# flag deliberate code here: unchecked printf-family results (cert-err33-c),
# sscanf of already-validated fields (cert-err34-c), parameter order
# heuristics, implicit widening of small products, char narrowing in ASCII
# helpers, repeated branches, memcpy of escape prefixes, Annex K advice,
# strcpy after a length check, struct padding, and clang 14's false
# "uninitialized va_list" after va_start.
LINT_DIRS   = common tx rx keygen
# Files with clang-tidy findings their owners are still working on: reported,
# but not fatal. Remove a file from the list once it is clean.
LINT_PENDING ?=
LINT_SRC    = $(filter-out $(LINT_PENDING),$(wildcard $(LINT_DIRS:%=%/*.c)))
LINT_JOBS  ?= 2
CPPCHECK   ?= cppcheck
CLANG_TIDY ?= clang-tidy
TIDY_CHECKS = -*,clang-analyzer-*,-clang-analyzer-security.insecureAPI.DeprecatedOrUnsafeBufferHandling,$\
-clang-analyzer-security.insecureAPI.strcpy,-clang-analyzer-optin.*,-clang-analyzer-valist.Uninitialized,$\
bugprone-*,-bugprone-easily-swappable-parameters,$\
-bugprone-implicit-widening-of-multiplication-result,-bugprone-narrowing-conversions,$\
-bugprone-branch-clone,-bugprone-not-null-terminated-result,$\
cert-*,-cert-err33-c,-cert-err34-c,performance-*,-performance-no-int-to-ptr,portability-*,$\
misc-redundant-expression,misc-misplaced-const,misc-definitions-in-headers

lint: deps
	$(CPPCHECK) --std=c11 --enable=warning,performance,portability --inline-suppr --quiet \
		--error-exitcode=1 --suppress=missingIncludeSystem -D_GNU_SOURCE -Icommon \
		$(LINT_DIRS)
	@echo "$(CLANG_TIDY) on $(words $(LINT_SRC)) files"
	@printf '%s\n' $(LINT_SRC) | xargs -P $(LINT_JOBS) -n 4 sh -c 'out=$$($(CLANG_TIDY) \
		--quiet -checks="$(TIDY_CHECKS)" -warnings-as-errors="*" \
		-header-filter="^(common|tx|rx|keygen)/" "$$@" -- -std=c11 -D_GNU_SOURCE \
		-Icommon $(PKG_CFLAGS) 2>&1); rc=$$?; \
		printf "%s\n" "$$out" | grep -v -e "warnings* generated\.$$" -e "^$$"; exit $$rc' sh
	@echo "lint: clean"
	@if [ -n "$(strip $(LINT_PENDING))" ]; then \
	  echo "lint: findings in files still being worked on (not fatal): $(LINT_PENDING)"; \
	  $(CLANG_TIDY) --quiet -checks="$(TIDY_CHECKS)" \
	    -header-filter="^(common|tx|rx|keygen)/" $(LINT_PENDING) -- -std=c11 \
	    -D_GNU_SOURCE -Icommon $(PKG_CFLAGS) 2>/dev/null | grep -E '(warning|error): ' || true; \
	fi

# The systemd units: syntax and references (systemd-analyze verify, with
# ExecStart pointed at this build) and the exposure score (offline).
check-units: all
	@if ! command -v systemd-analyze >/dev/null; then \
	  echo "check-units: systemd-analyze not installed; skipped"; exit 0; fi; \
	d=$$(mktemp -d); trap 'rm -rf "$$d"' EXIT; \
	for u in diode-tx diode-rx; do \
	  sed "s|/usr/local/bin/|$(abspath $(BUILD))/|g" config/$$u.service > $$d/$$u.service; \
	done; \
	systemd-analyze verify --man=no $$d/diode-tx.service $$d/diode-rx.service && \
	for u in diode-tx diode-rx; do \
	  systemd-analyze security --offline=true --threshold=20 $$d/$$u.service | tail -n 1; \
	done

# install: binaries, systemd units (ExecStart follows PREFIX), example
# configurations, man pages and documents. DESTDIR for staged installs.
BINDIR  = $(PREFIX)/bin
UNITDIR ?= $(PREFIX)/lib/systemd/system
MANDIR  ?= $(PREFIX)/share/man
DOCDIR  ?= $(PREFIX)/share/doc/diode

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(UNITDIR) \
		$(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8
	install -m 0755 $(BINS) $(DESTDIR)$(BINDIR)/
	install -m 0644 config/tx.conf config/rx.conf $(DESTDIR)$(DOCDIR)/examples/
	for u in diode-tx diode-rx; do \
	  sed 's|/usr/local/bin/|$(BINDIR)/|g' config/$$u.service > $(DESTDIR)$(UNITDIR)/$$u.service && \
	  chmod 0644 $(DESTDIR)$(UNITDIR)/$$u.service || exit 1; \
	done
	install -m 0644 docs/man/diode-keygen.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 docs/man/diode.conf.5 $(DESTDIR)$(MANDIR)/man5/
	install -m 0644 docs/man/diode-tx.8 docs/man/diode-rx.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 0644 README.md docs/*.md $(DESTDIR)$(DOCDIR)/

clean:
	rm -rf build build-san build-fuzz

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
