"""The jobs' names: what the API sends and the worker registers, in one place that imports
nothing (the worker imports the API's models, the API sends these names)."""

IMPORT_ITEMS = "items.import"
