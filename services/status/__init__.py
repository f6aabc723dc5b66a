"""``streamsend status``: a running daemon's live view in the terminal."""
