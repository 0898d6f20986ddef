# Two commands on a fresh clone:  make app  (dashboard)  and  make test  (test suite).
# Both create .venv with requirements.txt when it is missing or older than requirements.txt.
# make app-lean: the dashboard from .venv-app, with requirements-app.txt only (ONNX Runtime, no torch).
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.requirements.stamp
APP_VENV := .venv-app
APP_STAMP := $(APP_VENV)/.requirements.stamp

.PHONY: app app-lean test venv clean-venv

# Binds 127.0.0.1 (this machine only) by default; `make app ADDRESS=0.0.0.0 PORT=8080` only
# behind a reverse proxy with a password (README, "Serving on a network").
ADDRESS ?= 127.0.0.1
PORT ?= 8501

app: $(STAMP)
	$(VENV)/bin/python -m dashboard.serve --server.address $(ADDRESS) --server.port $(PORT)

app-lean: $(APP_STAMP)
	$(APP_VENV)/bin/python -m dashboard.serve --server.address $(ADDRESS) --server.port $(PORT)

test: $(STAMP)
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

venv: $(STAMP)

$(STAMP): requirements.txt requirements-app.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -r requirements.txt
	touch $(STAMP)

$(APP_STAMP): requirements-app.txt
	test -x $(APP_VENV)/bin/python || $(PYTHON) -m venv $(APP_VENV)
	$(APP_VENV)/bin/pip install -r requirements-app.txt
	touch $(APP_STAMP)

clean-venv:
	rm -rf $(VENV) $(APP_VENV)
