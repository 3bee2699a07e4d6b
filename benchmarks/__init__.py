"""Benchmarks: `python -m benchmarks` (or `make bench`) runs them all and writes benchmarks/REPORT.md;
`python -m benchmarks.<bench_name>` runs one. Raw results land in benchmarks/results/ (gitignored)."""
