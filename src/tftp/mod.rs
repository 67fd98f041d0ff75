//! TFTP: packet codec, option negotiation, per-transfer state machine, the UDP server loop.
