//! The tui wizard: a pure menu state machine plus drawing onto a terminal given as a parameter.
