"""Ordering: scan, catalog, the order window, one photo's way to a paid order, settling, the run."""
