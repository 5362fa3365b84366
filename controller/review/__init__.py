"""Readers of the decision log (read-only, WAL): the log view, the report and the terminal rendering.

* :mod:`.log` — recent runs, cycles, orders and events (``levctl log``);
* :mod:`.report` — summary, plots and a self-contained HTML page (``levctl report``);
* :mod:`.render` — rich tables and JSON-ready dicts for books, greeks and cycles.

Modules are imported where used: reading a log never loads the plotting stack.
"""
