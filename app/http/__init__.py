"""HTTP and ASGI helpers shared by the middleware chain and the API: ASGI message helpers,
who the client is (`ClientIdentifier`), problem-details answers, and route matching. The one
package below the API that knows the web stack: `app.core` stays free of it, so services and
worker processes never import Starlette (import-linter holds it: pyproject.toml)."""
