# Realize. `make run` and `make test` are all a newcomer needs.

GO          ?= go
BIN         := bin/realize
RUN_DIR     := .run
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
TEST_FLAGS  ?= -timeout 15m

.PHONY: build run test check bench bench-scale clean kernel-test

build:
	$(GO) build -o $(BIN) ./cmd/realize

# A throwaway peer in ./.run (gitignored): config, data and one arena, created
# on first use, then the daemon in the foreground. Ctrl-C stops it.
run: build
	@test -f $(RUN_DIR)/config.toml || ./$(BIN) --config $(RUN_DIR)/config.toml init \
		--name dev --data $(RUN_DIR)/data --arena home=$(RUN_DIR)/home \
		--listen 127.0.0.1:7741 --nfs 127.0.0.1:7742
	@echo
	@echo "Arena 'home' is $(CURDIR)/$(RUN_DIR)/home: drop files there."
	@echo "In another terminal: ./$(BIN) --config $(RUN_DIR)/config.toml status   (or: log)"
	@echo "Ctrl-C stops the daemon."
	@echo
	./$(BIN) --config $(RUN_DIR)/config.toml daemon

test:
	$(GO) test $(TEST_FLAGS) ./...

# The kernel end-to-end tests alone, verbosely: a real Linux kernel
# (user-mode-linux) mounts the daemons' NFS exports. See test/kernel/README.md.
kernel-test:
	$(GO) test $(TEST_FLAGS) -count=1 -v -run '^TestKernel' ./internal/e2e/

check:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	GOOS=darwin $(GO) build ./...
	$(GO) test -race $(TEST_FLAGS) ./...

bench:
	$(GO) run ./internal/bench/cmd/realize-bench

# The scale stage alone: one arena of SCALE_FILES small files (~4 GB of
# tree for 1M, generated once into SCALE_DIR and reused; ~4 GB more while
# it runs). Remove SCALE_DIR when done.
SCALE_FILES ?= 1000000
SCALE_DIR   ?= /tmp/realize-bench-scale
bench-scale:
	$(GO) run ./internal/bench/cmd/realize-bench -only scale -scale-files $(SCALE_FILES) -dir $(SCALE_DIR)

clean:
	rm -rf bin $(RUN_DIR)
