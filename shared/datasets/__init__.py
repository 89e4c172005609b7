"""Readers (and smoke-data writers) for public data sets used by more than one project."""
