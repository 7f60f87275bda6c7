"""Django admin registrations of the reviews app."""
