"""Pure domain: data models and computations. No I/O, no Qt, no asyncio."""
