# Roughy ingest — every target is a one-liner over cargo and the project's own files.
CARGO ?= cargo
ROUGHY_URL ?= http://127.0.0.1:8080
# `make run` enables the operator API with this token so `make key` can mint a first key.
ROUGHY_ADMIN_TOKEN ?= roughy-dev-admin-token
export ROUGHY_ADMIN_TOKEN

.PHONY: run test test-suites test-deps lint fmt openapi schema schema-check key bench fuzz clean toolchain

## Run the service on its embedded defaults (./var, 127.0.0.1:8080).
run: toolchain
	$(CARGO) run --release -p roughy-server --bin roughy-server

## Run the whole test suite (installs the TUS client libraries the interop tests drive).
## One local S3 server (s3s-fs, built once into ~/.cache/roughy by scripts/s3s-fs) serves the
## whole run. The black-box suite runs three times: on the in-memory repository, on PostgreSQL
## (a throwaway cluster the tests start from the machine's PostgreSQL binaries), and on
## PostgreSQL with the blobs in S3.
test: toolchain test-deps
	scripts/s3s-fs run -- $(MAKE) --no-print-directory test-suites

## The suites `make test` runs, once an S3 server's ROUGHY_TEST_S3_* variables are set.
test-suites:
	$(CARGO) nextest run --workspace --no-fail-fast
	ROUGHY_TEST_WIRING=postgres $(CARGO) nextest run -p roughy-tests --no-fail-fast
	ROUGHY_TEST_WIRING=postgres-s3 $(CARGO) nextest run -p roughy-tests --no-fail-fast

## The real clients: tus-js-client (npm) and tuspy (PyPI), the SDK generators and type
## checkers of the generated-client tests (openapi-python-client + mypy, openapi-typescript +
## typescript), Playwright for the browser tests (which drive the machine's chromium), and
## Schemathesis for the OpenAPI conformance test.
test-deps:
	npm ci --prefix tests/interop --no-audit --no-fund --loglevel=error
	npm ci --prefix tests/clients/typescript --no-audit --no-fund --loglevel=error
	python3 -m pip install --quiet --disable-pip-version-check -r tests/interop/requirements.txt -r tests/clients/python/requirements.txt -r tests/browser/requirements.txt -r tests/schemathesis/requirements.txt

## The toolchain rust-toolchain.toml pins (linked from the machine's stable of the same release
## when there is one, so nothing is downloaded).
toolchain:
	@scripts/toolchain

## Formatting and clippy, warnings denied.
lint: toolchain
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## Regenerate the committed OpenAPI document from the code.
openapi:
	$(CARGO) run -q -p roughy-server --bin roughy-server -- openapi > openapi/openapi.json

## Regenerate crates/postgres/src/schema.rs from migrations/ (diesel print-schema on a throwaway
## cluster; diesel_cli is built once into ~/.cache/roughy by scripts/schema).
schema:
	scripts/schema write

## Fail when the committed crates/postgres/src/schema.rs is not what migrations/ generate.
schema-check:
	scripts/schema check

## Mint a first API key (with 1000 credits) on a server started by `make run`; prints the key.
key:
	@acc=$$(curl -fsS -X POST -H "Authorization: Bearer $(ROUGHY_ADMIN_TOKEN)" $(ROUGHY_URL)/admin/v1/accounts | sed -E 's/.*"id":"([^"]+)".*/\1/') && \
	curl -fsS -o /dev/null -X POST -H "Authorization: Bearer $(ROUGHY_ADMIN_TOKEN)" -H 'Content-Type: application/json' -d '{"credits":1000}' $(ROUGHY_URL)/admin/v1/accounts/$$acc/top-ups && \
	curl -fsS -X POST -H "Authorization: Bearer $(ROUGHY_ADMIN_TOKEN)" $(ROUGHY_URL)/admin/v1/accounts/$$acc/api-keys | sed -E 's/.*"key":"([^"]+)".*/\1/'

## Measure uploads against this machine's own limits (issue #5): prints the table and writes
## bench/RESULTS.md (about 15 minutes; BENCH_ARGS=--help for the options). PEERS=1 also
## measures other TUS servers in the same run (@tus/server from npm, rustus from crates.io;
## installed once into ~/.cache/roughy by scripts/bench-peers; about 25 minutes).
PEERS ?=
bench: toolchain
	$(CARGO) build --release -p roughy-server
	scripts/s3s-fs run -- $(CARGO) run --release -p roughy-bench -- $(if $(PEERS),--peers) $(BENCH_ARGS)

## Fuzz every parser of request data (TUS headers, Range, list cursors and limits, download
## queries, JSON bodies): the 22 properties `make test` runs at 256 cases each, here at
## FUZZ_CASES each (50000: 1.1 million cases, about a minute on two cores).
FUZZ_CASES ?= 50000
fuzz:
	PROPTEST_CASES=$(FUZZ_CASES) $(CARGO) nextest run -p roughy-http -E 'test(/^fuzz::/)' --no-fail-fast

clean:
	$(CARGO) clean
	rm -rf var tests/interop/node_modules
