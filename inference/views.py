"""HTML pages and htmx partials of the inference app."""
