"""Django admin registrations of the audit app."""
