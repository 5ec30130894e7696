"""Running callto as a service: change propagation between processes, start-up checks, logs, metrics,
backup and restore."""
