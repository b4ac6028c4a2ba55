"""The sandbox's HTTP routes, one module per API area; `cascade_studio.sandbox.app` assembles them."""
