"""The built-in simulated network (`monitor demo`): real listeners on loopback, scheduled faults."""
