"""Django admin registrations of the inference app."""
