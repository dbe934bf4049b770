# pledgescan developer tasks. `make test` is the README's test command and what .ci/run runs.
PY ?= python3
PYTEST_ARGS ?=

.PHONY: install test lint demo testbed testbed-deps bench clean tls-data i18n-extract i18n-update i18n-compile

install:  ## editable install with the test tools
	$(PY) -m pip install -q -e '.[test]'

test: install  ## the whole suite (tests needing Debian servers skip locally when absent; never in CI)
	$(PY) -m pytest -q $(PYTEST_ARGS)

tls-data:  ## regenerate checks/lib/tls_suites.json from the installed sslyze/nassl (after upgrading them)
	$(PY) -m scanner.collectors.tls.suite_data

lint:
	$(PY) -m ruff check scanner checks templates tests bench

demo: install
	pledgescan demo -o report.html

testbed-deps:  ## Debian packages the integration tests use (root)
	apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
	    nginx-light knot knot-dnsutils apache2 libapache2-mod-php phpmyadmin adminer git openssl chromium \
	    redis-server

testbed: install  ## start the test servers by hand (Ctrl-C stops them)
	$(PY) -m tests.testbed.run

bench: install
	@# bytecode as an installed package has it (pip compiles a wheel's modules on install); an editable
	@# checkout run with PYTHONDONTWRITEBYTECODE=1 would compile ~80 modules again in every scan command
	$(PY) -m compileall -q scanner checks
	$(PY) bench/bench_tls.py
	@if [ -f bench/bench_portfolio.py ]; then $(PY) bench/bench_portfolio.py; fi
	$(PY) bench/bench_scale.py
	$(PY) bench/bench_html.py
	$(PY) bench/bench_workers.py
	$(PY) bench/bench_notify.py

I18N_POT = scanner/locale/messages.pot
i18n-extract:  ## every translatable text (templates, Python, check metadata, baseline) into the .pot
	$(PY) -m babel.messages.frontend extract -F babel.cfg --no-location --sort-output \
	    --project pledgescan --msgid-bugs-address "" -o $(I18N_POT) .

i18n-update: i18n-extract  ## merge new texts into each language's .po (translators then fill them in)
	$(PY) -m babel.messages.frontend update -i $(I18N_POT) -d scanner/locale --no-wrap --ignore-obsolete

i18n-compile:  ## .po -> .mo (the .mo files are committed: a plain `pip install .` ships them)
	$(PY) -m babel.messages.frontend compile -d scanner/locale --statistics

clean:
	rm -rf build dist *.egg-info .pytest_cache report.html pledgescan-report*
