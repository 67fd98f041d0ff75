//! The only `unsafe` in the crate: ioctls, termios, mount, reboot, module loading.

pub mod termios;
