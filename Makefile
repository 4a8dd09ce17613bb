# `make report` and `make test` bootstrap .venv/ on a fresh clone; both are idempotent.
# The run targets replace their output folder's previous run (--overwrite); a run that
# was interrupted is continued by hand: .venv/bin/conformance run ... --out FOLDER --resume
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
OUT    ?= out/report

.PHONY: install browser report test bench regress baseline clean
BASELINE := reports/baseline/standard.jsonl

install: $(STAMP)

# Re-install only when the declared or pinned requirements change.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=24"
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[all,ray,test]'
	touch $(STAMP)

# The standard suite on every adapter; then the execution modes (torch.compile, XLA, eager
# Flax), which compile per shape, with their eager twins on the small `modes` suite.
report: $(STAMP)
	$(BIN)/conformance run --suite standard --adapters all --out $(OUT) --overwrite; status=$$?; \
	$(BIN)/conformance run --suite modes --adapters modes --out $(OUT)-modes --overwrite; modes=$$?; \
	echo "reports written to $(OUT)/ and $(OUT)-modes/ (report.html, report.md, report.json, junit.xml, results.jsonl)"; \
	test $$status -le 1 && test $$modes -le 1

# The HTML report's browser test needs Debian's Chromium: installed here when missing and we are
# root; otherwise one line says the command and the test reports it missing.
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's chromium for the browser test"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
		echo "chromium is missing: run 'sudo apt-get install chromium' (the browser test fails without it)"; \
	fi

test: $(STAMP) browser
	$(BIN)/python -m pytest tests
	@echo "test results above; worker logs of the end-to-end tests are under pytest's tmp dirs"

bench: $(STAMP)
	$(BIN)/python -m conformance.integrations.bench

# Run the standard suite and diff it against the baseline committed for the pinned versions.
regress: $(STAMP)
	$(BIN)/conformance run --suite standard --adapters all --out out/regress --overwrite; test $$? -le 1
	$(BIN)/conformance diff $(BASELINE) out/regress --out out/regress

# Refresh the committed baseline (after a deliberate version bump).
baseline: $(STAMP)
	$(BIN)/conformance run --suite standard --adapters all --out out/baseline --overwrite; test $$? -le 1
	mkdir -p reports/baseline && cp out/baseline/results.jsonl $(BASELINE)
	$(BIN)/conformance report out/baseline --findings reports/baseline/findings.md; test $$? -le 1

clean:
	rm -rf $(VENV) out
