"""Workload scripts run inside each peer's own virtual environment (benchmarks/.peers/<peer>).

They import nothing from zaoshu (only their sibling workload_common): each reads --base-url --items
--concurrency and prints one JSON line `RESULT {...}` with items, accepted, wall_s and cpu_s.
"""
