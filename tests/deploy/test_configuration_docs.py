"""The configuration table in the README and docs/configuration.md is the one the settings
generate, so a new or renamed setting cannot go undocumented."""

from __future__ import annotations

from ingest.docs import (
    CONFIGURATION_DOC,
    README,
    main,
    readme_with_table,
    render_configuration_doc,
    render_table,
)
from ingest.settings import settings_table


def test_readme_configuration_table_matches_the_settings() -> None:
    text = README.read_text()
    assert text == readme_with_table(text), "run: python -m ingest.docs --write"
    start, end = text.index("<!-- config:start -->"), text.index("<!-- config:end -->")
    assert render_table() in text[start:end]


def test_configuration_doc_matches_the_settings() -> None:
    assert CONFIGURATION_DOC.read_text() == render_configuration_doc()


def test_table_has_one_row_per_setting_with_its_default() -> None:
    rows = render_table().splitlines()[2:]
    assert len(rows) == len(settings_table())
    assert "| `INGEST_KAFKA_BOOTSTRAP_SERVERS` | `localhost:9092` |" in render_table()
    assert "| `INGEST_SHUTDOWN_GRACE_S` | `25.0` |" in render_table()


def test_docs_check_mode_reports_up_to_date_docs() -> None:
    assert main(["--check"]) == 0
