# The two commands a newcomer needs: `make run` and `make test`.
GO      ?= go
BIN     := bin
PKGS    := ./...
# Packages with goroutines and shared state: always tested with -race.
RACE_PKGS := ./dataflow/... ./network/... ./statefun/... ./checkpoint/... ./connectors/... ./e2e/...

.PHONY: all build run test test-race test-short bench bench-quick smoke-long lint vet fmt verify-fmt verify-mod clean

all: build

build: ## bin/statefun and the greeter example
	$(GO) build -o $(BIN)/statefun ./cmd/statefun
	$(GO) build -o $(BIN)/greeter ./examples/greeter
	$(GO) build -o $(BIN)/kafka-greeter ./examples/kafka-greeter

run: build ## the greeter demo: embedded functions, file in, stdout + file out, stops by itself
	@mkdir -p out
	$(BIN)/greeter run --module examples/greeter/module.yaml --parallelism 2 --checkpoint-interval 100ms
	@echo "greetings also written to out/greetings.txt ($$(wc -l < out/greetings.txt) lines)"

test: verify-fmt vet ## the whole suite, race detector on the concurrent packages
	$(GO) test -race -shuffle=on -timeout 15m $(PKGS)
	# Heap measurements are meaningless under -race, which skips them: run them plainly.
	$(GO) test -count=1 -run 'TestCacheHeapWithinBudget|TestMemory1M' ./dataflow/state/

test-short:
	$(GO) test -short $(PKGS)

bench: ## micro benchmarks, then the macro benchmarks side by side
	$(GO) test -run '^$$' -bench . -benchtime 1x -benchmem ./network/ ./statefun/ ./dataflow/state/ ./statefun/feedback/
	$(GO) run ./benchmarks

smoke-long: ## the smoke test's long form: 10 SIGKILLs over 100k commands
	SMOKE_LONG=1 $(GO) test -count=1 -timeout 30m -run TestSmoke -v ./internal/smoke/

bench-quick:
	$(GO) run ./benchmarks -suite embedded,f2f -n 500000

lint: vet verify-fmt ## vet, gofmt and the repository rules in internal/lint
	$(GO) test ./internal/lint/

vet:
	$(GO) vet $(PKGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

verify-fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

verify-mod:
	$(GO) mod tidy -diff

clean:
	rm -rf $(BIN) out
