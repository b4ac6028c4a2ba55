"""Everything Qt: bootstrap, windows, pages, models, plots, dialogs."""
