"""The local SQL store: models, migrations, upserts, cursors, score history, ledgers and the run log."""
