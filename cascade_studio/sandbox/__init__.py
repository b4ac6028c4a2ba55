"""A local OpenAI-compatible server with simulated models: the demo backend, the test backend and
the fault injector. Depends only on core (nothing of the app above it)."""
