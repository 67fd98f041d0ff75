//! `finit_module(2)`: loading one kernel module from a file.
//!
//! Which modules to load and in what order is decided in `agent::modules`; this wrapper only
//! loads one file and says whether the kernel already had it.

use crate::error::{Context, Result};
use std::path::Path;

/// Whether a load call changed anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loaded {
    /// The module was inserted by this call.
    Now,
    /// The kernel already had it (`EEXIST`): loaded earlier or built in.
    Already,
}

/// Loads the module in the file at `path` with no parameters (see finit_module(2)).
pub fn finit_module(path: &Path) -> Result<Loaded> {
    let file = std::fs::File::open(path).with_context(|| format!("opening module {}", path.display()))?;
    match rustix::system::finit_module(&file, c"", 0) {
        Ok(()) => Ok(Loaded::Now),
        Err(rustix::io::Errno::EXIST) => Ok(Loaded::Already),
        Err(e) => Err(std::io::Error::from(e)).with_context(|| format!("loading module {}", path.display())),
    }
}
