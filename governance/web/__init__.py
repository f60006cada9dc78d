"""The web faces: the HTTP API and the console, on Litestar."""
