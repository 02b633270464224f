# The commands the README gives. `make help` lists them.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VENV := .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
# Test hosts: localhost/<image>-systemd built by scripts/build-images.sh.
IMAGE ?= debian12
MATRIX ?= debian11 debian12 debian13
# Scenario lanes of `make test-redis`: scenarios of a lane run in turn, the
# lanes side by side (scripts/run-scenarios.sh). scenario@image puts the
# scenario's Redis hosts on that Debian release: every Redis generation the
# README claims runs in CI (debian11 = 6.0, debian12 = 7.0, debian13 = 8.x),
# and the drills on 6.0, the oldest, where the ops procedures branch (single
# AOF file, XPENDING + XCLAIM in the stream consumer), and last the
# production example inventory as given (production), Redis under Sentinel
# (ha, on 7.0) and the monitoring stack (monitoring). A scenario's runs on
# several images share its host names: they stay in one lane (run-scenarios.sh
# refuses otherwise). One lane: LANES='"default tls app deploy drill production ha monitoring"'.
# `make test` runs lint and the app tests in a lane of their own beside them.
# Lanes of about the same length; the machine's 2 cores are the limit (more
# lanes only spread the same CPU work), so a lane's length is its share of
# the CPU. Scenario times of the last clean-clone `.ci/run` (2026-12-01, every
# lane, 2683 s in all): default 985 s, default@debian11 702, default@debian13
# 561, drill@debian11 2187, monitoring 1912, app 1857, tls 271, deploy 2170,
# production 1273, ha 2639 (1426 s of verify, 28 tests); lint 153 + app tests
# 397 beside.
LANES ?= "default default@debian11 default@debian13" "drill@debian11" "ha" "monitoring" "app tls" "deploy" "production"

.PHONY: help deps venv images lint test test-redis test-app test-matrix drill demo demo-down \
        bench-redis bench-api bench-app acl-export wheelhouse test-app-stack test-deploy test-monitoring test-ha smoke clean \
        demo-ha

help: ## List the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 16

deps: ## Install system packages (podman, runc, debootstrap, redis-server) as root
	@scripts/install-deps.sh

$(VENV)/.stamp: requirements-dev.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

venv: $(VENV)/.stamp ## Make the pinned tool venv (ansible, molecule, linters)

images: deps ## Build the local systemd host images (cached): Debian 11, 12, 13
	@scripts/build-images.sh debian11 debian12 debian13

# The lint tools come from this checkout's .venv, made on first use. A checkout
# without a .venv whose PATH already has every tool (a git worktree sharing
# another checkout's venv: PATH=/path/.venv/bin:$PATH make lint) uses those.
LINT_TOOLS := yamllint ansible-lint ruff pytest
LINT_VENV := $(if $(wildcard $(VENV)/bin/python)$(filter-out $(words $(LINT_TOOLS)),$(words \
	$(shell command -v $(LINT_TOOLS) 2>/dev/null))),venv)
# promtool and amtool, extracted from the distribution's packages without
# installing them (an install would start Prometheus and Alertmanager here).
PROM_TOOLS := build/tools/bin
$(PROM_TOOLS)/promtool $(PROM_TOOLS)/amtool:
	scripts/install-prom-tools.sh
# ruff (ruff.toml): every Python file outside django_app/, which has its own
# config and run (make test-app). Both ruff runs report before lint fails.
lint: $(LINT_VENV) $(PROM_TOOLS)/promtool $(PROM_TOOLS)/amtool ## yamllint, ansible-lint, argument specs, units, shellcheck, named proofs exist, alert rules (promtool, amtool, runbooks), ruff (outside django_app/)
	yamllint --strict .
	ansible-lint --profile production
	python3 scripts/check-argument-specs.py
	python3 scripts/check-units.py
	scripts/lint-shell.sh
	python3 scripts/check-proofs.py
	$(PROM_TOOLS)/promtool check rules roles/monitoring/files/rules/*.rules.yml
	$(PROM_TOOLS)/promtool test rules roles/monitoring/tests/rules/*.test.yml
	python3 scripts/check-alerts.py
	scripts/check-monitoring-config.sh
	python3 -m pytest -q -p no:cacheprovider scripts/tests
	rc=0; ruff check . || rc=1; ruff format --check . || rc=1; exit $$rc

test-redis: deps venv images wheelhouse ## Molecule scenarios in lanes side by side (LANES)
	scripts/run-scenarios.sh $(LANES)

test-app: deps ## django_app: ruff + pytest against a real redis-server and Celery worker
	django_app/scripts/test.sh

test: deps venv images wheelhouse $(PROM_TOOLS)/promtool $(PROM_TOOLS)/amtool ## Everything CI runs: lint + app tests + every Molecule scenario, in lanes
	scripts/run-scenarios.sh "make:lint make:test-app" $(LANES)

drill: deps venv images wheelhouse ## Runbook drills: inject a fault, run the ops playbook, check recovery
	molecule test -s drill

test-matrix: deps venv ## The default scenario on Debian 11, 12 and 13 (Redis 6.0, 7.0, 8.x)
	scripts/build-images.sh $(MATRIX)
	for img in $(MATRIX); do \
	  echo "=== $$img ==="; \
	  REDISOPS_IMAGE=localhost/$$img-systemd:latest molecule test -s default; \
	done

demo: deps venv images wheelhouse ## Local systemd hosts + playbooks/site.yml (with monitoring) + smoke, then print how to reach them
	ansible-playbook playbooks/local/hosts-up.yml -e local_image=localhost/$(IMAGE)-systemd:latest
	ansible-playbook playbooks/local/pki.yml
	ansible-playbook playbooks/site.yml
	ansible-playbook playbooks/smoke.yml
	ansible-playbook playbooks/local/summary.yml
	ansible-playbook playbooks/local/app-summary.yml
	ansible-playbook playbooks/local/monitoring-summary.yml

# The same steps on inventories/local/ha.yml (alone: it shares group_vars
# with hosts.yml, never layered on it).
HA_INVENTORY := inventories/local/ha.yml
demo-ha: deps venv images wheelhouse ## The demo with Redis under Sentinel: 3 x (Redis + Sentinel), app and monitoring hosts, allow-lists on; prints master, replicas, Sentinels
	ansible-playbook -i $(HA_INVENTORY) playbooks/local/hosts-up.yml -e local_image=localhost/$(IMAGE)-systemd:latest
	ansible-playbook -i $(HA_INVENTORY) playbooks/local/pki.yml
	ansible-playbook -i $(HA_INVENTORY) playbooks/site.yml
	ansible-playbook -i $(HA_INVENTORY) playbooks/smoke.yml
	ansible-playbook -i $(HA_INVENTORY) playbooks/local/summary.yml
	ansible-playbook -i $(HA_INVENTORY) playbooks/local/ha-summary.yml
	ansible-playbook -i $(HA_INVENTORY) playbooks/local/app-summary.yml
	ansible-playbook -i $(HA_INVENTORY) playbooks/local/monitoring-summary.yml

smoke: venv ## manage.py smoke on the deployed stack (inventories/local unless INVENTORY=...)
	ansible-playbook $(if $(INVENTORY),-i $(INVENTORY)) playbooks/smoke.yml

test-app-stack: deps venv images wheelhouse ## The full-stack Molecule scenario (redis, web + beat, worker)
	molecule test -s app

test-deploy: deps venv images wheelhouse ## The app stack's deploys and rollbacks under load (Molecule scenario deploy)
	molecule test -s deploy

test-monitoring: deps venv images wheelhouse ## The monitoring scenario: exporters, Prometheus, Alertmanager, the app; faults page their runbook
	molecule test -s monitoring

# IMAGE=debian13 puts the HA hosts on Redis 8.x (29 of 30 tests passed,
# 23.5 min: roles/redis_sentinel/README.md). IMAGE=debian11 puts them on 6.0
# (shared Sentinel password): converge 4.3 min, verify 13.6 min, 3 tests
# still fail there (roles/redis_sentinel/README.md).
test-ha: deps venv images wheelhouse ## The ha Molecule scenario: 3 x (Redis + Sentinel) + a client running the app; replication, failover drills
	REDISOPS_IMAGE=localhost/$(IMAGE)-systemd:latest molecule test -s ha

demo-down: venv ## Remove the local hosts and networks of both demos (make demo, make demo-ha)
	ansible-playbook playbooks/local/hosts-down.yml
	ansible-playbook -i $(HA_INVENTORY) playbooks/local/hosts-down.yml

bench-redis: deps venv images ## redis-benchmark: hardened vs stock, TLS vs plain
	scripts/bench-redis.sh

bench-api: deps venv images wheelhouse ## wrk: the API through the TLS proxy vs straight to gunicorn
	scripts/bench-api.sh

acl-export: ## Regenerate the app's Redis ACL users for Ansible from django_app/redisops/redis_acl.py
	cd django_app && python3 -m redisops.redis_acl > ../playbooks/group_vars/all/app_redis_acl.yml

wheelhouse: ## Build the app and its dependencies as wheels for offline hosts
	django_app/scripts/wheelhouse.sh

bench-app: deps ## App benchmarks: limiters, streams, Celery round trips
	django_app/scripts/bench.sh

clean: ## Remove venvs and build output (images stay)
	rm -rf $(VENV) .venv-app build
