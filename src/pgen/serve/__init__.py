"""pgen as a service: REST routes over the Engine, tenants and API keys, an
OpenAI-compatible personalizing endpoint, and a web page (``pgen serve``)."""
