"""HTTP layer: thin routes that parse requests and call the serving layer."""
