"""The HTTP API under /api/v1: one Litestar `Controller` per resource, each handler naming
the permission it needs (checked by the `authorize` guard before it runs) and calling one
service function. `router.api_router` puts them together."""
