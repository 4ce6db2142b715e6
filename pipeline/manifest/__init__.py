"""The manifest: strict YAML into frozen records; its folders, paths, profiles, listings."""
