//! bty-web's HTTP/1.1 edge: how bytes on a connection become a [`head::Head`] for a worker and
//! how a response goes back out, without letting idle, slow or half-open clients hold threads.
//!
//! `poller.rs` owns connections between requests (accept, heads, keep-alive, response
//! writing, deadlines, per-address limits); `head.rs` parses and checks a request head;
//! `body.rs` reads a body on a worker at a minimum rate; `outgoing.rs` serializes and sends
//! responses. Routing and handlers know none of this (see `server.rs`).

pub mod body;
pub mod head;
pub mod outgoing;
pub mod poller;
