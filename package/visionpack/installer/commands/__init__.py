"""One module per installer command; each function takes a Context and returns a JSON-able dict."""
