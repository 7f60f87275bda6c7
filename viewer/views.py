"""HTML pages and htmx partials of the viewer app."""
