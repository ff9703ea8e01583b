"""Interceptor examples: bearer-token auth, a structured access log, a per-method latency
histogram. ``python -m examples.interceptors [--api async|blocking]`` runs them together."""
