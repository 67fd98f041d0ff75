//! The only `unsafe` in the crate: ioctls, termios, mount, reboot, module loading.

pub mod blockdev;
pub mod module;
pub mod mount;
pub mod net;
pub mod reboot;
pub mod termios;
