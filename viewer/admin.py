"""Django admin registrations of the viewer app."""
