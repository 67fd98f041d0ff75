//! The plan agent: what runs in the netboot initramfs (as PID 1) or as `bty --mac`.
