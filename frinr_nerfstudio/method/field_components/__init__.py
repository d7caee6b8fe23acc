"""Small reusable modules the plugin's fields are built from."""
