"""The cascade in production: an OpenAI-compatible gateway that applies an exported policy, logs
every request and samples lower-tier answers for the teacher. No Qt and no workspace: it runs
alone (a server, a container), stateless apart from its log (an import-linter contract)."""
