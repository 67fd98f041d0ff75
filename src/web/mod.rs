//! bty-web: router, handlers, auth, templates, static assets; the only place that knows tiny_http.
