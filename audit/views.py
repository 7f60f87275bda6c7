"""HTML pages and htmx partials of the audit app."""
