# Everything needed on a fresh machine: `make demo` and `make test` create .venv and install
# into it (torch first, from its pinned CPU build, so pip never pulls a CUDA build).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH := torch==2.13.0
# Public data sets live beside the repo; the registry looks there instead of downloading.
export BERTFIT_DATA_DIR ?= $(abspath ../shared/data)
export HF_HUB_OFFLINE ?= 1

DEMO_DIR := runs/sms_spam

.PHONY: demo test test-fast lint install install-dev browser labelstudio clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e .
	touch $@

$(BIN)/.installed-dev: $(BIN)/.installed
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed
install-dev: $(BIN)/.installed-dev

demo: $(BIN)/.installed
	$(BIN)/bertfit train --dataset sms_spam --output $(DEMO_DIR) --overwrite
	@echo "re-scoring the saved test split from the model folder:"
	$(BIN)/bertfit evaluate $(DEMO_DIR) --data $(DEMO_DIR)/predictions_test.csv --text-column text --label-column gold
	$(BIN)/bertfit predict $(DEMO_DIR) \
		--text "WINNER!! You have been selected to receive a £900 prize reward. Call 09061701461 to claim now." \
		--text "Are we still meeting for lunch tomorrow at 12?"

# The browser tests need Debian's Chromium and its driver; installed where we may (root with apt-get),
# otherwise those tests skip and say why.
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get install -y -q chromium chromium-driver >/dev/null || echo "could not install chromium; browser tests will skip"; \
		else echo "chromium/chromedriver missing and not root: browser tests will skip"; fi; \
	fi

# The Label Studio round-trip test drives a real Label Studio, in its own environment (its pins are not
# bertfit's); its database is migrated once here, so the test starts it in seconds. Where it cannot be
# installed, that test skips and says why.
LABEL_STUDIO := .peers/labelstudio
$(LABEL_STUDIO)/template:
	@$(PYTHON) -m venv $(LABEL_STUDIO) && $(LABEL_STUDIO)/bin/pip install --quiet label-studio==1.23.2 label-studio-sdk==2.1.2 'sentry-sdk<3' \
		&& $(LABEL_STUDIO)/bin/python tests/label_studio_server.py \
		|| echo "could not install or start Label Studio; the round-trip test will skip"

labelstudio: $(LABEL_STUDIO)/template

# The layers contract (import-linter, in pyproject.toml) and ruff run before the tests: a circle or an
# upward import fails the build as a failing test does.
lint: $(BIN)/.installed-dev
	$(BIN)/lint-imports
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

test: $(BIN)/.installed-dev browser labelstudio lint
	$(BIN)/python -m pytest

test-fast: $(BIN)/.installed-dev
	$(BIN)/python -m pytest -m "not slow"

clean:
	rm -rf $(VENV) runs .pytest_cache
