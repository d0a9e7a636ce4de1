"""Command-line clients: `livermore ctl` (signed control commands) and `livermore tail` (feeds)."""
