//! The shipped binary is static: the musl build has no PT_INTERP program header (no dynamic
//! loader) and no DT_NEEDED entries (no shared libraries). The ELF headers are parsed here, so
//! the test needs no readelf.
//!
//! The binaries are `target/x86_64-unknown-linux-musl/release/bty` (`make static`) and
//! `target/aarch64-unknown-linux-musl/release/bty` (`make static-arm64`), both built by `make test`
//! before the tests; each must also be an ELF for its own machine. When one has not been built the
//! test says so and passes without checking, so a plain `cargo test` stays fast; `make test` always
//! checks both.

use std::path::Path;

const MUSL_BIN: &str = "target/x86_64-unknown-linux-musl/release/bty";
const ARM64_BIN: &str = "target/aarch64-unknown-linux-musl/release/bty";
const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;
const PT_INTERP: u32 = 3;
const PT_DYNAMIC: u32 = 2;
const DT_NEEDED: u64 = 1;

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// The (type, file offset, file size) of every program header of a little-endian ELF64 file.
fn program_headers(elf: &[u8]) -> Vec<(u32, u64, u64)> {
    assert_eq!(&elf[..4], b"\x7fELF", "not an ELF file");
    assert_eq!((elf[4], elf[5]), (2, 1), "not a little-endian 64-bit ELF file");
    let phoff = u64_at(elf, 0x20) as usize;
    let phentsize = u16_at(elf, 0x36) as usize;
    let phnum = u16_at(elf, 0x38) as usize;
    (0..phnum)
        .map(|i| {
            let h = phoff + i * phentsize;
            (u32_at(elf, h), u64_at(elf, h + 0x08), u64_at(elf, h + 0x20))
        })
        .collect()
}

/// The d_tag of every entry in the dynamic section described by a PT_DYNAMIC header.
fn dynamic_tags(elf: &[u8], offset: u64, size: u64) -> Vec<u64> {
    (0..size as usize / 16)
        .map(|i| u64_at(elf, offset as usize + i * 16))
        .take_while(|&tag| tag != 0)
        .collect()
}

/// Asserts that the built binary at `rel` is an ELF for `machine` with no loader and no shared
/// libraries; skips (with a note) when it has not been built.
fn assert_static(rel: &str, machine: u16) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    let Ok(elf) = std::fs::read(&path) else {
        eprintln!(
            "skipping: {} is not built (run `make static`/`make static-arm64`; `make test` does)",
            path.display()
        );
        return;
    };
    let headers = program_headers(&elf);
    assert_eq!(u16_at(&elf, 0x12), machine, "{} is an ELF for another machine (e_machine)", path.display());
    assert!(!headers.is_empty());
    assert!(
        !headers.iter().any(|h| h.0 == PT_INTERP),
        "{} asks for a dynamic loader (PT_INTERP)",
        path.display()
    );
    for (_, offset, size) in headers.iter().filter(|h| h.0 == PT_DYNAMIC) {
        let needed = dynamic_tags(&elf, *offset, *size).into_iter().filter(|&t| t == DT_NEEDED).count();
        assert_eq!(needed, 0, "{} needs {needed} shared libraries (DT_NEEDED)", path.display());
    }
}

#[test]
fn the_musl_binary_has_no_interpreter_and_no_shared_libraries() {
    assert_static(MUSL_BIN, EM_X86_64);
}

#[test]
fn the_arm64_binary_is_an_aarch64_elf_with_no_interpreter_and_no_shared_libraries() {
    assert_static(ARM64_BIN, EM_AARCH64);
}

#[test]
fn the_elf_checks_see_the_interpreter_of_a_dynamic_binary() {
    // The test binary itself is linked dynamically against glibc: the same parser must see it,
    // or the check above could pass on anything.
    let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    let headers = program_headers(&me);
    assert!(headers.iter().any(|h| h.0 == PT_INTERP), "the glibc test binary shows no PT_INTERP");
    let (_, offset, size) = headers.into_iter().find(|h| h.0 == PT_DYNAMIC).unwrap();
    assert!(dynamic_tags(&me, offset, size).contains(&DT_NEEDED));
}
