# Two commands on a fresh clone:  make app  (dashboard)  and  make test  (test suite).
# Both create .venv with requirements.txt when it is missing or older than requirements.txt.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.requirements.stamp

.PHONY: app test venv clean-venv

# Binds 127.0.0.1 (this machine only) by default; `make app ADDRESS=0.0.0.0 PORT=8080` only
# behind a reverse proxy with a password (README, "Serving on a network").
ADDRESS ?= 127.0.0.1
PORT ?= 8501

app: $(STAMP)
	$(VENV)/bin/streamlit run streamlit_app.py --server.address $(ADDRESS) --server.port $(PORT)

test: $(STAMP)
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

venv: $(STAMP)

$(STAMP): requirements.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -r requirements.txt
	touch $(STAMP)

clean-venv:
	rm -rf $(VENV)
