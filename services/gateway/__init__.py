"""The control gateway: an HTTP API and admin page that relay signed commands over Redis."""
