# The commands the README gives. `make help` lists them.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VENV := .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
# Test hosts: localhost/<image>-systemd built by scripts/build-images.sh.
IMAGE ?= debian12
MATRIX ?= debian11 debian12 debian13
SCENARIOS ?= default tls app drill

.PHONY: help deps venv images lint test test-redis test-app test-matrix drill demo demo-down \
        bench-redis bench-app wheelhouse test-app-stack smoke clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 16

deps: ## Install system packages (podman, runc, debootstrap, redis-server) as root
	@scripts/install-deps.sh

$(VENV)/.stamp: requirements-dev.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

venv: $(VENV)/.stamp ## Make the pinned tool venv (ansible, molecule, linters)

images: deps ## Build the local systemd host images (cached)
	@scripts/build-images.sh $(IMAGE) debian13

lint: venv ## yamllint, ansible-lint (production profile), argument_specs vs defaults
	yamllint --strict .
	ansible-lint --profile production
	python3 scripts/check-argument-specs.py

test-redis: deps venv images wheelhouse ## Molecule scenarios (Redis role, and the full app stack)
	for s in $(SCENARIOS); do molecule test -s $$s; done

test-app: deps ## django_app: ruff + pytest against a real redis-server and Celery worker
	django_app/scripts/test.sh

test: lint test-app test-redis ## Everything CI runs: lint + app tests + every Molecule scenario

drill: deps venv images ## Runbook drills: inject a fault, run the ops playbook, check recovery
	molecule test -s drill

test-matrix: deps venv ## The default scenario on Debian 11, 12 and 13 (Redis 6.0, 7.0, 8.x)
	scripts/build-images.sh $(MATRIX)
	for img in $(MATRIX); do \
	  echo "=== $$img ==="; \
	  REDISOPS_IMAGE=localhost/$$img-systemd:latest molecule test -s default; \
	done

demo: deps venv images wheelhouse ## Local systemd hosts + playbooks/site.yml + smoke, then print how to reach them
	ansible-playbook playbooks/local/hosts-up.yml -e local_image=localhost/$(IMAGE)-systemd:latest
	ansible-playbook playbooks/site.yml
	ansible-playbook playbooks/smoke.yml
	ansible-playbook playbooks/local/summary.yml
	ansible-playbook playbooks/local/app-summary.yml

smoke: venv ## manage.py smoke on the deployed stack (inventories/local unless INVENTORY=...)
	ansible-playbook $(if $(INVENTORY),-i $(INVENTORY)) playbooks/smoke.yml

test-app-stack: deps venv images wheelhouse ## The full-stack Molecule scenario (redis, web + beat, worker)
	molecule test -s app

demo-down: venv ## Remove the demo's local hosts and network
	ansible-playbook playbooks/local/hosts-down.yml

bench-redis: deps venv images ## redis-benchmark: hardened vs stock, TLS vs plain
	scripts/bench-redis.sh

wheelhouse: ## Build the app and its dependencies as wheels for offline hosts
	django_app/scripts/wheelhouse.sh

bench-app: deps ## App benchmarks: limiters, streams, Celery round trips
	django_app/scripts/bench.sh

clean: ## Remove venvs and build output (images stay)
	rm -rf $(VENV) .venv-app build
