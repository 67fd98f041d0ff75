//! Every serde type that crosses a process boundary (agent ⇄ web JSON, events API).
