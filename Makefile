# Two commands on a fresh clone:  make app  (dashboard)  and  make test  (test suite).
# make app builds .venv-app with requirements-app.txt only (ONNX Runtime, no torch, no CUDA libraries);
# make test builds .venv with requirements.txt (everything: training, export, tests). Each is rebuilt
# when missing or older than its requirements file. make app-full: the dashboard from .venv.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.requirements.stamp
APP_VENV := .venv-app
APP_STAMP := $(APP_VENV)/.requirements.stamp

.PHONY: app app-lean app-full test venv clean-venv

# Binds 127.0.0.1 (this machine only) by default; `make app ADDRESS=0.0.0.0 PORT=8080` only
# behind a reverse proxy with a password (README, "Serving on a network").
ADDRESS ?= 127.0.0.1
PORT ?= 8501

app: $(APP_STAMP)
	$(APP_VENV)/bin/python -m dashboard.serve --server.address $(ADDRESS) --server.port $(PORT)

app-lean: app

app-full: $(STAMP)
	$(VENV)/bin/python -m dashboard.serve --server.address $(ADDRESS) --server.port $(PORT)

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
