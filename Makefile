# Build, test and demo the diode-tx / diode-rx pair.
CC       ?= cc
CFLAGS   ?= -O2 -g
PREFIX   ?= /usr/local
BUILD    ?= build

PKGS      = libsodium libuv libisal libcrypto
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

.PHONY: all test unit integration demo bench fuzz fuzz-build install clean deps

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

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/doc/diode/examples
	install -m 0755 $(BINS) $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 config/tx.conf config/rx.conf \
		$(DESTDIR)$(PREFIX)/share/doc/diode/examples/

clean:
	rm -rf build build-san build-fuzz

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
