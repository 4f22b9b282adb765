# make repro: install what is missing, then run the whole DVC pipeline on the demo corpus.
# make test:  install what is missing, lint (ruff check, ruff format --check), then run the test suite.
# make gate:  run the CI profile (every model, three training seeds, a smaller demo corpus) and fail
#             on a metric that got worse than the committed ci/metrics and their seed spread allow
#             (params.yaml `gate`).
# Both work as the first command on a bare Debian machine (offline but for package registries).
# make app:   start the web page (Streamlit) on http://localhost:8501; models from data/models.
# make deps:  rewrite each stage's code deps in dvc.yaml from the imports (tests/test_stage_deps.py checks them).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# Debian packages: TTS engines and voices, and the real human speech the demo corpus is made of.
APT_PACKAGES := espeak-ng festival festvox-us-slt-hts festvox-kallpc16k festvox-kdlpc16k flite \
                ktuberling-data klettres-data pocketsphinx-testdata alsa-utils \
                asterisk-core-sounds-en asterisk-core-sounds-en-wav asterisk-core-sounds-fr-wav codec2 libsndfile1 git chromium
# chromium: the headless browser that tests/test_app_browser.py drives with Playwright (Playwright
# downloads no browser of its own here).

.PHONY: setup apt venv lint repro test gate app deps clean-venv

setup: apt venv

apt:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if ! command -v apt-get >/dev/null; then echo "missing Debian packages:$$missing (no apt-get here: install them by hand)"; exit 1; fi; \
	  sudo=""; [ "$$(id -u)" = 0 ] || sudo="sudo"; \
	  echo "installing Debian packages:$$missing"; \
	  $$sudo apt-get update -q && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -q --no-install-recommends $$missing; \
	fi

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

repro: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" dvc repro

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# pytest exits 5 when it collects no test: that is a broken suite, not a pass.
test: setup lint
	@PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

gate: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m tools.ci_profile --out ci/metrics
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/deepfake-audio gate --targets ci/metrics/*.json

# The web page. The upload limit (MB) matches deepfake_audio/webapp.py MAX_UPLOAD_MB; no usage
# statistics leave the machine.
APP_FLAGS := --server.address localhost --server.maxUploadSize 20 --browser.gatherUsageStats false \
             --client.toolbarMode minimal

app: venv
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/streamlit run app/streamlit_app.py $(APP_FLAGS)

deps: venv
	$(BIN)/python -m tools.stage_deps --write

clean-venv:
	rm -rf $(VENV)
