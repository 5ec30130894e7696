"""The HTTP edge: error shaping, request limits, authentication dependencies, health and docs."""
