"""The messenger: websocket chat between visitors and agents, and the hub between processes."""
