"""Review and delivery: the before/after page, decisions, thumbnails, MLS-ready photos."""
