"""Scoring saved models on labelled files (``scoring``), the report page (``report``), and metrics
rendered for people (``metrics``). Import the module you need: the report reads JSON and CSV files
only, and must not load torch through this package."""
