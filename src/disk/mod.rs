//! Block devices from sysfs: discovery, identity by serial, safety checks.
