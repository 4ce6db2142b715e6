"""Benchmarks of aihd against the local emulator in its own process (not tests)."""
