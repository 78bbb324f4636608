# Every target creates .venv/ from the pinned lock files first; nothing else is needed.
.PHONY: demo test test-unit lint format lock bench airflow

demo:  ## run the whole pipeline offline on the bundled demo site into ./data
	scripts/bootstrap.sh requirements.lock
	.venv/bin/ingest demo

test:  ## the whole test suite (tests/unit, tests/integration, tests/system) and lint
	scripts/system_deps.sh
	scripts/bootstrap.sh requirements-dev.lock
	.venv/bin/python -m pytest

test-unit:  ## the fast part: tests/unit, pure logic without servers (under a minute)
	scripts/bootstrap.sh requirements-dev.lock
	.venv/bin/python -m pytest tests/unit

lint:
	scripts/bootstrap.sh requirements-dev.lock
	.venv/bin/ruff check . && .venv/bin/ruff format --check .

format:
	.venv/bin/ruff check --fix . && .venv/bin/ruff format .

bench:  ## pipeline vs plain trafilatura throughput and peak memory
	scripts/bootstrap.sh requirements-dev.lock
	.venv/bin/python bench/bench_pipeline.py

lock:  ## re-resolve the pinned dependencies after editing pyproject.toml
	.venv/bin/uv pip compile pyproject.toml --extra dev --python-version 3.11 \
		--generate-hashes --no-header -q -o requirements-dev.lock
	# the runtime lock pins what the tests ran: the dev lock's versions as constraints
	grep -oE '^[a-z0-9._-]+==[^ ]+' requirements-dev.lock > .dev-pins.txt
	.venv/bin/uv pip compile pyproject.toml --extra s3server --python-version 3.11 \
		--generate-hashes --no-header -q -c .dev-pins.txt -o requirements.lock
	rm -f .dev-pins.txt

airflow:  ## Airflow standalone with the DAGs, embedded S3 and the demo site (Ctrl-C stops)
	scripts/bootstrap.sh requirements-dev.lock
	.venv/bin/python scripts/airflow_local.py
