"""The messenger: visitors' websocket chat with agents (the hub it uses is `portal.hub`)."""
