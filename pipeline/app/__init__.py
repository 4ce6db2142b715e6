"""What a command asks for: API settings, run and collect requests, status and export reports."""
