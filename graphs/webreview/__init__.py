"""`zaoshu review RUN_DIR`: a local web page to read, filter and fix a run folder's samples.

index.py (SQLite index over the JSONL ledgers), view.py (one card's data), charts.py (SVG overview),
app.py (the FastAPI app), cli.py (the command). Decisions live in graphs/review_ledger.py's ledger.
"""
