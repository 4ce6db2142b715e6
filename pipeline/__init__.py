"""aihd: bulk-enhance listing photos through the AI HomeDesign Image Enhancement API."""

__version__ = "0.1.0"
