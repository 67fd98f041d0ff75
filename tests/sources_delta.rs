//! `bty flash --delta` with a chunk index over HTTP: raw, seekable zstd (by byte range) and
//! qcow2, plain and compressed (through its cluster tables) onto targets that equal the image,
//! differ in scattered chunks, are garbage, or are shorter. The target always ends
//! byte-identical to the image, and the test server's byte counter shows exactly what was
//! fetched. Also: a chunk changed behind the index's back exits 4, a bad index is refused, a
//! cut connection resumes.

mod common;

use common::httpd::{noise, Httpd, Resource};
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The chunk size the tests index with (small, so a few MiB make many chunks).
const CS: u64 = 256 << 10;
/// The image: 24 chunks (6 MiB), data with a zero run of chunks 10..14.
const CHUNKS: u64 = 24;

/// Four random bits a byte: compressible, so `qemu-img convert -c` stores compressed clusters.
fn image_bytes() -> Vec<u8> {
    image_of(CHUNKS)
}

/// [`image_bytes`] with `chunks` chunks (the zero run stays at 10..14).
fn image_of(chunks: u64) -> Vec<u8> {
    let mut bytes: Vec<u8> = noise((CS * chunks) as usize, 77).iter().map(|b| b & 0x0f).collect();
    bytes[(10 * CS) as usize..(14 * CS) as usize].fill(0);
    bytes
}

/// One chunk entry of the version-1 index, parsed here from the README's description.
#[derive(Debug)]
struct Entry {
    start: u64,
    len: u64,
}

fn entries(index: &[u8]) -> Vec<Entry> {
    assert_eq!(&index[..8], b"BTYINDEX");
    let count = u64::from_le_bytes(index[24..32].try_into().unwrap()) as usize;
    (0..count)
        .map(|i| {
            let at = 112 + i * 48;
            Entry {
                start: u64::from_le_bytes(index[at + 32..at + 40].try_into().unwrap()),
                len: u64::from(u32::from_le_bytes(index[at + 40..at + 44].try_into().unwrap())),
            }
        })
        .collect()
}

/// A stored image on the server: its bytes, its index, and what the target must become.
struct Served {
    dir: tempfile::TempDir,
    raw: PathBuf,
    stored: Vec<u8>,
    index: Vec<u8>,
}

fn sh(dir: &Path, script: &str) {
    let ok = Command::new("sh").arg("-c").arg(script).current_dir(dir).status().unwrap().success();
    assert!(ok, "{script}");
}

/// Makes the image in `kind` ("raw", "zst" seekable, "gz", "qcow2", "qcow2c" compressed,
/// "qcow2c-1m" compressed with 1 MiB clusters, "qcow2z" zstd-compressed, "qcow2x" with
/// subclusters) and indexes it with `bty index`.
fn served(kind: &str) -> Served {
    served_of(kind, CHUNKS)
}

/// [`served`] with an image of `chunks` chunks.
fn served_of(kind: &str, chunks: u64) -> Served {
    let dir = scratch();
    let raw = dir.path().join("disk.img");
    std::fs::write(&raw, image_of(chunks)).unwrap();
    let cs = CS.to_string();
    let stored = match kind {
        "raw" => {
            let idx = dir.path().join("stored.index");
            let out =
                run(&["index", raw.to_str().unwrap(), "--chunk-size", &cs, "-o", idx.to_str().unwrap()]);
            assert_eq!(out.status.code(), Some(0), "{}", text(&out));
            raw.clone()
        }
        "zst" => {
            let z = dir.path().join("stored");
            let idx = dir.path().join("stored.index");
            let out = run(&[
                "index",
                raw.to_str().unwrap(),
                "--chunk-size",
                &cs,
                "--zstd-seekable",
                z.to_str().unwrap(),
                "-o",
                idx.to_str().unwrap(),
            ]);
            assert_eq!(out.status.code(), Some(0), "{}", text(&out));
            z
        }
        "gz" => {
            // gzip cannot be read at random: the index only compares (layout 0).
            sh(dir.path(), "gzip -n -c disk.img > stored");
            let z = dir.path().join("stored");
            let idx = dir.path().join("stored.index");
            let out = run(&["index", z.to_str().unwrap(), "--chunk-size", &cs, "-o", idx.to_str().unwrap()]);
            assert_eq!(out.status.code(), Some(0), "{}", text(&out));
            z
        }
        _ => {
            let c = match kind {
                "qcow2c" => "-c",
                // Clusters larger than chunks: a chunk is part of a compressed cluster.
                "qcow2c-1m" => "-c -o cluster_size=1M",
                "qcow2z" => "-c -o compression_type=zstd",
                // Subclusters: 32 per cluster, allocated one by one.
                "qcow2x" => "-o extended_l2=on,cluster_size=128K",
                _ => "",
            };
            sh(dir.path(), &format!("qemu-img convert -q {c} -f raw -O qcow2 disk.img stored"));
            let z = dir.path().join("stored");
            let idx = dir.path().join("stored.index");
            let out = run(&["index", z.to_str().unwrap(), "--chunk-size", &cs, "-o", idx.to_str().unwrap()]);
            assert_eq!(out.status.code(), Some(0), "{}", text(&out));
            z
        }
    };
    let index = std::fs::read(dir.path().join("stored.index")).unwrap();
    Served { stored: std::fs::read(stored).unwrap(), index, raw, dir }
}

fn start(s: &Served, tweak: impl FnOnce(&mut Resource)) -> Httpd {
    let srv = Httpd::start();
    let mut res = Resource::new(s.stored.clone());
    tweak(&mut res);
    srv.put("/img", res);
    srv.put("/img.index", Resource::new(s.index.clone()));
    srv
}

fn flash(url: &str, target: &Path, extra: &[&str]) -> Output {
    bty()
        .args(["flash", "--delta", "--yes", "--json"])
        .args(extra)
        .arg(url)
        .arg(target)
        .env("BTY_HTTP_STALL_SECS", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// The result line's `network_delta` object.
fn network(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(last).unwrap_or_default();
    v["network_delta"].clone()
}

/// What the targets start as.
enum Start {
    Equal,
    /// The image with these chunks changed (a data byte each, or data in a zero chunk).
    Scattered(&'static [u64]),
    Garbage,
    Shorter,
}

fn target(dir: &Path, start: &Start) -> PathBuf {
    let t = dir.join("target.bin");
    let mut bytes = image_bytes();
    match start {
        Start::Equal => {}
        Start::Scattered(chunks) => {
            for &c in chunks.iter() {
                bytes[(c * CS + 4097) as usize] ^= 0x5a;
            }
        }
        Start::Garbage => bytes = noise(bytes.len(), 5),
        Start::Shorter => bytes.truncate((CS * CHUNKS / 2 + 1000) as usize),
    }
    std::fs::write(&t, bytes).unwrap();
    t
}

/// Flashes `kind` onto each kind of target and checks the result and the bytes fetched.
fn round_trips(kind: &str) {
    let s = served(kind);
    let ranges = entries(&s.index);
    // Chunk 0 holds the first MiB (written last), 11 is in the zero run (zeroed, not fetched),
    // 5 and 6 touch (one request), 20 is alone.
    let scattered: &[u64] = &[0, 5, 6, 11, 20];
    for start in [Start::Equal, Start::Scattered(scattered), Start::Garbage, Start::Shorter] {
        let srv = start_server(&s);
        let dir = scratch();
        let t = target(dir.path(), &start);
        let out = flash(&srv.url("/img"), &t, &[]);
        assert_eq!(out.status.code(), Some(0), "{kind}: {}", text(&out));
        assert_eq!(sha256sum(&t), sha256sum(&s.raw), "{kind}: the target holds the image");
        // The probe of each object costs one byte; the index is read whole.
        assert_eq!(srv.bytes_sent("/img.index"), 1 + s.index.len() as u64, "{kind}");
        let fetched = srv.bytes_sent("/img");
        let net = network(&out);
        match (&start, kind) {
            (Start::Equal, _) => {
                assert_eq!(fetched, 1, "{kind}: nothing but the probe");
                assert_eq!(net["chunks_unchanged"], CHUNKS, "{kind}");
            }
            (Start::Scattered(chunks), "qcow2" | "qcow2c" | "qcow2c-1m" | "qcow2z") => {
                let fetches = Qcow2::parse(&s.stored)
                    .fetches(&chunks.iter().filter(|&&c| c != 11).copied().collect::<Vec<_>>());
                if kind == "qcow2" {
                    assert_eq!(
                        fetches.data,
                        qemu_img_map_data(&s, chunks),
                        "the tables agree with qemu-img map"
                    );
                } else {
                    assert!(fetches.compressed > 0, "qemu-img -c stored compressed clusters");
                }
                let want = fetches.metadata + fetches.data.iter().map(|r| r.end - r.start).sum::<u64>();
                assert_eq!(
                    fetched,
                    1 + want,
                    "{kind}: the header and tables, then the changed chunks' clusters"
                );
                assert_eq!(net["bytes_fetched"], want, "{kind}");
                assert_eq!(net["chunks_fetched"], 4, "{kind}");
                assert_eq!(net["chunks_zeroed"], 1, "{kind}: zeroed, not fetched");
            }
            (Start::Scattered(_), "qcow2x") => {
                assert_eq!(
                    (net["chunks_fetched"].as_u64(), net["chunks_zeroed"].as_u64()),
                    (Some(4), Some(1))
                );
                // 4 of 24 chunks: their subclusters and one table, not the image.
                assert!(fetched < s.stored.len() as u64 / 3, "{kind}: {fetched} of {}", s.stored.len());
            }
            (Start::Scattered(chunks), _) => {
                let want: u64 = chunks.iter().filter(|&&c| c != 11).map(|&c| ranges[c as usize].len).sum();
                assert_eq!(fetched, 1 + want, "{kind}: exactly the changed chunks' ranges");
                assert_eq!(net["bytes_fetched"], want, "{kind}");
                assert_eq!(net["chunks_fetched"], 4, "{kind}");
                assert_eq!(net["chunks_zeroed"], 1, "{kind}");
                // Touching chunks share one request: 0, 5+6, 20.
                let r = |a: usize, b: usize| {
                    format!("bytes={}-{}", ranges[a].start, ranges[b].start + ranges[b].len - 1)
                };
                let mut asked: Vec<String> = srv
                    .log()
                    .into_iter()
                    .filter(|l| l.path == "/img")
                    .filter_map(|l| l.range)
                    .filter(|r| r != "bytes=0-0")
                    .collect();
                asked.sort();
                let mut want = vec![r(0, 0), r(5, 6), r(20, 20)];
                want.sort();
                assert_eq!(asked, want, "{kind}: coalesced Range requests");
            }
            _ => {
                assert!(fetched <= 1 + s.stored.len() as u64, "{kind}: never more than the image");
                assert!(net["chunks_fetched"].as_u64().unwrap() > 0, "{kind}");
            }
        }
    }
}

fn start_server(s: &Served) -> Httpd {
    start(s, |_| {})
}

#[test]
fn raw_round_trips_fetch_only_changed_chunks() {
    round_trips("raw");
}

#[test]
fn seekable_zstd_round_trips_fetch_only_changed_frames() {
    round_trips("zst");
}

#[test]
fn qcow2_round_trips_fetch_only_changed_clusters() {
    round_trips("qcow2");
}

#[test]
fn compressed_qcow2_round_trips_fetch_only_changed_clusters() {
    round_trips("qcow2c");
}

#[test]
fn compressed_qcow2_with_clusters_larger_than_chunks_round_trips() {
    round_trips("qcow2c-1m");
}

#[test]
fn zstd_compressed_qcow2_round_trips_fetch_only_changed_clusters() {
    round_trips("qcow2z");
}

#[test]
fn qcow2_with_subclusters_round_trips() {
    // The test's own table reader knows no extended L2 entries: the bytes fetched are checked
    // for the equal target (none) and bounded by the image otherwise.
    round_trips("qcow2x");
}

#[test]
fn a_change_larger_than_a_plan_window_reads_each_qcow2_table_once() {
    // 300 changed chunks: more than one window of the plan (256 chunks).
    let chunks = 300;
    let s = served_of("qcow2", chunks);
    let srv = start_server(&s);
    let dir = scratch();
    let t = dir.path().join("target.bin");
    std::fs::write(&t, noise((CS * chunks) as usize, 5)).unwrap();
    let out = flash(&srv.url("/img"), &t, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(sha256sum(&t), sha256sum(&s.raw), "the target holds the image");
    let with_data: Vec<u64> = (0..chunks).filter(|c| !(10..14).contains(c)).collect();
    let fetches = Qcow2::parse(&s.stored).fetches(&with_data);
    let want = fetches.metadata + fetches.data.iter().map(|r| r.end - r.start).sum::<u64>();
    let net = network(&out);
    assert_eq!(net["bytes_fetched"], want, "the header and each table once, then the clusters");
    assert_eq!(srv.bytes_sent("/img"), 1 + want);
    assert_eq!((net["chunks_fetched"].as_u64(), net["chunks_zeroed"].as_u64()), (Some(chunks - 4), Some(4)));
}

#[test]
fn a_qcow2_with_an_index_inspects_delta_ready() {
    let s = served("qcow2");
    let out = run(&["inspect", "--json", s.dir.path().join("stored").to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["chunk_index"]["layout"], "qcow2", "{}", text(&out));
    assert_eq!(v["chunk_index"]["delta_ready"], true, "{}", text(&out));
}

#[test]
fn seekable_zstd_decodes_as_plain_zstd_and_inspects() {
    let s = served("zst");
    let z = s.dir.path().join("stored");
    let plain = Command::new("zstd").arg("-dc").arg(&z).output().unwrap();
    assert!(plain.status.success());
    assert_eq!(plain.stdout, image_bytes(), "any zstd decoder reads it as one stream");
    let out = run(&["inspect", "--json", "--format", "zst", z.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["virtual_size"], CS * CHUNKS, "{}", text(&out));
    assert_eq!(v["chunk_index"]["delta_ready"], true, "inspect sees the index beside it");
    let raw = run(&["inspect", "--json", s.raw.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert!(v["chunk_index"].is_null(), "no index beside disk.img");
}

#[test]
fn a_chunk_changed_behind_the_index_exits_4() {
    for kind in ["raw", "qcow2", "qcow2c"] {
        changed_behind_the_index_exits_4(kind);
    }
}

fn changed_behind_the_index_exits_4(kind: &str) {
    let s = served(kind);
    // The server's copy differs from the index in chunk 7 (for qcow2, in the cluster that
    // backs it); the target differs there too, so the chunk is fetched, and must be caught
    // before it is written.
    let at = match kind {
        "raw" => 7 * CS + 100,
        _ => Qcow2::parse(&s.stored).fetches(&[7]).data[0].start + 100,
    };
    let srv = start(&s, |r| r.body[at as usize] ^= 1);
    let dir = scratch();
    let t = target(dir.path(), &Start::Scattered(&[7]));
    let out = flash(&srv.url("/img"), &t, &[]);
    assert_eq!(out.status.code(), Some(4), "{kind}: {}", text(&out));
    assert!(text(&out).contains("changed behind its index"), "{kind}: {}", text(&out));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("\"event\":\"result\""), "never reported good");
    // The first MiB was invalidated before the first change: the target does not boot as if good.
    let head = std::fs::read(&t).unwrap();
    assert!(head[..1 << 20].iter().all(|&b| b == 0), "the head is invalidated");
}

#[test]
fn bytes_changed_behind_the_index_are_caught_when_the_flash_falls_back_to_streaming() {
    // A server without Range: the flash compares by the index but streams the whole object,
    // which must still be the one the index describes.
    let s = served("raw");
    let srv = start(&s, |r| {
        r.body[(7 * CS + 100) as usize] ^= 1;
        r.ranges = false;
    });
    let dir = scratch();
    let t = target(dir.path(), &Start::Scattered(&[7]));
    let out = flash(&srv.url("/img"), &t, &[]);
    assert!(text(&out).contains("does not take Range requests"), "{}", text(&out));
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("\"event\":\"result\""), "never reported good");
    let head = std::fs::read(&t).unwrap();
    assert!(head[..1 << 20].iter().all(|&b| b == 0), "the head is invalidated");
}

#[test]
fn a_streamed_image_changed_behind_its_index_until_it_no_longer_decodes_exits_4() {
    let s = served("gz");
    let srv = start(&s, |r| r.body[0] ^= 0xff);
    let dir = scratch();
    let t = target(dir.path(), &Start::Scattered(&[7]));
    let before = std::fs::read(&t).unwrap();
    let out = flash(&srv.url("/img"), &t, &[]);
    assert_eq!(out.status.code(), Some(4), "a digest mismatch, not an unknown format: {}", text(&out));
    assert_eq!(std::fs::read(&t).unwrap(), before, "nothing was written");
}

#[test]
fn a_format_that_contradicts_the_index_is_refused_before_anything_is_written() {
    let s = served("qcow2");
    let srv = start_server(&s);
    let dir = scratch();
    let t = target(dir.path(), &Start::Scattered(&[7]));
    let before = std::fs::read(&t).unwrap();
    let out = flash(&srv.url("/img"), &t, &["--format", "raw"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--format raw contradicts the chunk index"), "{}", text(&out));
    assert_eq!(std::fs::read(&t).unwrap(), before, "nothing was written");
}

#[test]
fn a_qcow2_whose_tables_cannot_be_read_leaves_the_target_untouched() {
    let s = served("qcow2");
    // The L1 entry points past the end of the file: no chunk can be found.
    let l1_at = be64(&s.stored, 40) as usize;
    let srv = start(&s, |r| r.body[l1_at..l1_at + 8].copy_from_slice(&(1u64 << 40 | 1 << 63).to_be_bytes()));
    let dir = scratch();
    let t = target(dir.path(), &Start::Scattered(&[7]));
    let before = sha256sum(&t);
    let out = flash(&srv.url("/img"), &t, &[]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("an L2 table at byte 1099511627776 lies beyond the end"), "{}", text(&out));
    assert_eq!(sha256sum(&t), before, "nothing was written: the target still boots what it held");
}

#[test]
fn a_truncated_or_malformed_index_is_refused() {
    let s = served("raw");
    let srv = start_server(&s);
    let dir = scratch();
    let t = target(dir.path(), &Start::Equal);
    let cut = dir.path().join("cut.index");
    std::fs::write(&cut, &s.index[..s.index.len() - 10]).unwrap();
    let out = flash(&srv.url("/img"), &t, &["--index", cut.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("truncated"), "{}", text(&out));
    let junk = dir.path().join("junk.index");
    std::fs::write(&junk, noise(5000, 3)).unwrap();
    let out = flash(&srv.url("/img"), &t, &["--index", junk.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("is not a usable chunk index"), "{}", text(&out));
    assert_eq!(sha256sum(&t), sha256sum(&s.raw), "the target is untouched");
}

#[test]
fn a_dropped_connection_mid_chunk_resumes() {
    for kind in ["raw", "qcow2"] {
        dropped_connection_resumes(kind);
    }
}

fn dropped_connection_resumes(kind: &str) {
    let s = served(kind);
    let (cut_at, want) = match kind {
        "raw" => (20 * CS + 1000, CS),
        _ => {
            let f = Qcow2::parse(&s.stored).fetches(&[20]);
            (f.data[0].start + 1000, f.metadata + f.data.iter().map(|r| r.end - r.start).sum::<u64>())
        }
    };
    let srv = start(&s, |r| {
        r.cuts = vec![cut_at];
        r.cut_bounded = true;
    });
    let dir = scratch();
    let t = target(dir.path(), &Start::Scattered(&[20]));
    let out = flash(&srv.url("/img"), &t, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(sha256sum(&t), sha256sum(&s.raw));
    let resumed = srv
        .log()
        .iter()
        .any(|l| l.range.as_deref().is_some_and(|r| r.starts_with(&format!("bytes={cut_at}-"))));
    assert!(resumed, "{kind}: asked again from the cut: {:?}", srv.log());
    assert_eq!(srv.bytes_sent("/img"), 1 + want, "{kind}: the chunk once, in two pieces");
}

/// What a client must read of a qcow2 image to fetch some chunks, worked out from the file
/// itself by the qcow2 specification (docs/interop/qcow2.txt).
struct Qcow2<'a> {
    file: &'a [u8],
    cluster_bits: u32,
    l1: Vec<u64>,
}

/// The bytes to read for some chunks of a qcow2 image.
struct Qcow2Fetches {
    /// Header (its first 4 KiB), L1 table, and each L2 table the chunks touch, once.
    metadata: u64,
    /// The stored ranges of the clusters backing the chunks, overlaps merged, in order.
    data: Vec<std::ops::Range<u64>>,
    /// How many of those clusters are compressed.
    compressed: usize,
}

impl<'a> Qcow2<'a> {
    fn parse(file: &'a [u8]) -> Qcow2<'a> {
        let be32 = |at: usize| u32::from_be_bytes(file[at..at + 4].try_into().unwrap());
        let l1_at = u64::from_be_bytes(file[40..48].try_into().unwrap()) as usize;
        let l1 = (0..be32(36) as usize).map(|i| self::be64(file, l1_at + 8 * i)).collect();
        Qcow2 { file, cluster_bits: be32(20), l1 }
    }

    fn fetches(&self, chunks: &[u64]) -> Qcow2Fetches {
        let csize = 1u64 << self.cluster_bits;
        let per_table = csize / 8;
        let mut tables = std::collections::BTreeSet::new();
        let mut data: Vec<std::ops::Range<u64>> = Vec::new();
        let mut compressed = 0;
        for &chunk in chunks {
            for cluster in chunk * CS / csize..=((chunk + 1) * CS - 1) / csize {
                let table = self.l1[(cluster / per_table) as usize] & 0x00ff_ffff_ffff_fe00;
                if table == 0 {
                    continue;
                }
                tables.insert(table);
                let entry = be64(self.file, (table + 8 * (cluster % per_table)) as usize);
                let range = if entry & 1 << 62 != 0 {
                    compressed += 1;
                    let x = 62 - (self.cluster_bits - 8);
                    let offset = entry & ((1 << x) - 1);
                    let sectors = (entry & !(3 << 62)) >> x;
                    offset..((offset & !511) + (sectors + 1) * 512).min(self.file.len() as u64)
                } else if entry & 1 == 0 && entry & 0x00ff_ffff_ffff_fe00 != 0 {
                    let host = entry & 0x00ff_ffff_ffff_fe00;
                    host..host + csize
                } else {
                    continue;
                };
                match data.last_mut() {
                    Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
                    _ => data.push(range),
                }
            }
        }
        let header = 4096.min(self.file.len() as u64);
        Qcow2Fetches {
            metadata: header + 8 * self.l1.len() as u64 + csize * tables.len() as u64,
            data,
            compressed,
        }
    }
}

fn be64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}

/// The stored ranges backing `chunks` (those with data) by `qemu-img map --output=json`,
/// touching ranges merged.
fn qemu_img_map_data(s: &Served, chunks: &[u64]) -> Vec<std::ops::Range<u64>> {
    let out = Command::new("qemu-img")
        .args(["map", "--output=json"])
        .arg(s.dir.path().join("stored"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let map: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let mut data: Vec<std::ops::Range<u64>> = Vec::new();
    for &chunk in chunks {
        let span = chunk * CS..(chunk + 1) * CS;
        for e in &map {
            let (start, len) = (e["start"].as_u64().unwrap(), e["length"].as_u64().unwrap());
            let (Some(offset), true) = (e["offset"].as_u64(), e["data"] == true) else { continue };
            let (lo, hi) = (start.max(span.start), (start + len).min(span.end));
            if lo >= hi {
                continue;
            }
            let range = offset + (lo - start)..offset + (hi - start);
            match data.last_mut() {
                Some(last) if range.start == last.end => last.end = range.end,
                _ => data.push(range),
            }
        }
    }
    data
}
