"""The phonebook: shared and private contacts, format-insensitive number search, CSV/vCard import and export,
and customer cards assembled from the phonebook, the call history and admin-configured sources (SQL, HTTP)."""
