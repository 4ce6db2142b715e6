"""Collect: poll submitted orders and download each result, once, without half-written files."""
