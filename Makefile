# llm-proxy — run `make` for the list of targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

GO        ?= go
BIN_DIR   ?= bin
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS   := -s -w -X github.com/llm-proxy/llm-proxy/shared/buildinfo.version=$(VERSION) -X github.com/llm-proxy/llm-proxy/shared/buildinfo.commit=$(COMMIT)
FUNCTIONS := proxy manage-projects manage-tokens admin-ui dispatcher
TEMPL     := $(GO) tool templ

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*##"; printf "Targets:\n"} /^[a-zA-Z_-]+:.*##/ { printf "  %-12s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

.PHONY: run
run: ## Start the whole system (llm-proxy serve) on the embedded default: SQLite, in-memory parts, 127.0.0.1:8080 (this machine only)
	LISTEN_ADDR=$${LISTEN_ADDR:-127.0.0.1:8080} $(GO) run -ldflags "$(LDFLAGS)" ./local/cmd/llm-proxy serve

.PHONY: build
build: ## Build bin/llm-proxy and one binary per function into bin/
	CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o $(BIN_DIR)/llm-proxy ./local/cmd/llm-proxy
	@for f in $(FUNCTIONS); do \
	  if [ -d functions/$$f/cmd ]; then CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o $(BIN_DIR)/$$f ./functions/$$f/cmd || exit 1; fi; \
	done

# atexit_sleep_ms=0: the race runtime otherwise sleeps a second as every test
# binary (one per package, and the children some tests start) exits.
.PHONY: test
test: ## Run the whole suite against real PostgreSQL, Redis and headless Chromium
	./scripts/test-services.sh
	$(GO) vet ./...
	$(MAKE) --no-print-directory generate-check
	GORACE="atexit_sleep_ms=0 $$GORACE" $(GO) test -race -count=1 -timeout 15m ./...
	@if [ -f knative/go.mod ]; then cd knative && $(GO) test -count=1 ./...; fi

.PHONY: test-short
test-short: ## Quick tier for the inner loop: go test -short, no services (skips what needs PostgreSQL, Redis, Chromium or built binaries)
	$(GO) test -short ./...

.PHONY: lint
lint: ## go vet and a gofmt check
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '_templ.go$$')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

.PHONY: generate
generate: ## Regenerate templ components, the README configuration table and the Helm chart's values table
	$(TEMPL) generate -path templates
	$(GO) run ./shared/config/cmd/configdoc -readme README.md
	cd knative && $(GO) run ./cmd/chartdoc

# generate-check regenerates into a scratch copy, so it never touches the tree.
.PHONY: generate-check
generate-check: ## Fail when a generated file (templ components, the README configuration table, the chart's values table) is stale
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	cp -r templates "$$tmp/templates" && cp README.md "$$tmp/README.md" && cp -r knative/chart "$$tmp/chart" && \
	$(TEMPL) generate -path "$$tmp/templates" >/dev/null 2>&1 && \
	$(GO) run ./shared/config/cmd/configdoc -readme "$$tmp/README.md" && \
	(cd knative && $(GO) run ./cmd/chartdoc -chart "$$tmp/chart") && \
	if ! diff -r templates "$$tmp/templates" >/dev/null || ! diff -q README.md "$$tmp/README.md" >/dev/null || ! diff -r knative/chart "$$tmp/chart" >/dev/null; then \
	  echo "generated files are stale (diff below): run make generate and commit the result"; \
	  diff -r templates "$$tmp/templates"; diff README.md "$$tmp/README.md"; diff -r knative/chart "$$tmp/chart"; exit 1; \
	fi

.PHONY: bench
bench: ## Benchmarks: Go micro-benchmarks and the end-to-end load comparison (see docs/performance.md)
	$(GO) test -run '^$$' -bench . -benchmem ./shared/... ./events/... ./functions/...
	@if [ -d internal/bench ]; then $(GO) run ./internal/bench/cmd/bench; fi
