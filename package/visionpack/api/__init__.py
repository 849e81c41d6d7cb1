"""The HTTP layer of a worker: the front (connections), the app factory, routes, envelopes, access and CSRF
checks, metrics, the console."""
