# `make report` and `make test` bootstrap .venv/ on a fresh clone; both are idempotent.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
OUT    ?= out/report

.PHONY: install report test bench regress baseline clean
BASELINE := reports/baseline/standard.jsonl

install: $(STAMP)

# Re-install only when the declared or pinned requirements change.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=24"
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[all,test]'
	touch $(STAMP)

report: $(STAMP)
	$(BIN)/conformance run --suite standard --adapters all --out $(OUT); status=$$?; \
	echo "reports written to $(OUT)/ (report.html, report.md, report.json, junit.xml, results.jsonl)"; \
	test $$status -le 1

test: $(STAMP)
	$(BIN)/python -m pytest tests
	@echo "test results above; worker logs of the end-to-end tests are under pytest's tmp dirs"

bench: $(STAMP)
	$(BIN)/python -m conformance.bench

# Run the standard suite and diff it against the baseline committed for the pinned versions.
regress: $(STAMP)
	$(BIN)/conformance run --suite standard --adapters all --out out/regress; test $$? -le 1
	$(BIN)/conformance diff $(BASELINE) out/regress --out out/regress

# Refresh the committed baseline (after a deliberate version bump).
baseline: $(STAMP)
	$(BIN)/conformance run --suite standard --adapters all --out out/baseline; test $$? -le 1
	mkdir -p reports/baseline && cp out/baseline/results.jsonl $(BASELINE)

clean:
	rm -rf $(VENV) out
