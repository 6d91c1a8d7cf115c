"""The store: the schema, the database, and what writes a batch into it (threads, contacts,
the batch writer, connector leases). Imports only inbox.normalize below it."""
