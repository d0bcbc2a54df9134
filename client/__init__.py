"""The client side of the workflows: the recruitment API, CSV files and announcements."""
