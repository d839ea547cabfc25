"""The core's HTTP API (`/core/v1/...`): the contract as REST, served by `portal core`."""
