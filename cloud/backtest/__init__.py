"""Backtests: a proposed rule bundle replayed over a period's stored sales beside what was recorded.

`replay` is the core (sales in, figures out, no I/O); `store` reads the hub's tables for it in short
keyset pages; `run` wires the two; `jobs` runs backtests on threads of the API process; `sponsors` adds up
the sponsors' bill of recorded sales.
"""
