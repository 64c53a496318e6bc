"""The documentation site's generated parts (configuration, CLI, HTTP API, benchmarks) and
the MkDocs hook that puts them into the pages (`mkdocs.yml`, `make docs`)."""
