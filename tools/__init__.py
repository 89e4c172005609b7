"""Cross-project tools: the sweep driver, reproduce, the results table, the portfolio report and
the demo. The only package that imports several projects; `shared` (the library) imports none.
"""
