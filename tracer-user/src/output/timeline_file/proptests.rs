//! Generated timeline files: random bytes, a framing around random
//! contents, and a real file damaged at random places must each be read
//! as a timeline or refused with an error, never panic.
use proptest::prelude::*;

use super::{END_MAGIC, FORMAT_VERSION, MAGIC, RECORD_LEN, read, reader::MAX_TRAILER, tests::{scratch_dir, write}};
use crate::model::timeline::fixtures::history;

/// A real timeline file, written once.
fn valid_file() -> &'static [u8] {
    static FILE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    FILE.get_or_init(|| {
        let dir = scratch_dir("proptest-valid");
        write(&dir.join("t.timeline"), &history());
        let bytes = std::fs::read(dir.join("t.timeline")).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        bytes
    })
}

/// The prefix and footer of the format around random events and trailer,
/// with a random trailer length (the field the reader allocates from).
fn framed() -> impl Strategy<Value = Vec<u8>> {
    (prop::collection::vec(any::<u8>(), 0..512), prop_oneof![any::<u64>(), 0..600u64])
        .prop_map(|(body, trailer_len)| framed_bytes(&body, trailer_len))
}

fn framed_bytes(body: &[u8], trailer_len: u64) -> Vec<u8> {
    let mut bytes = MAGIC.to_vec();
    bytes.extend(FORMAT_VERSION.to_le_bytes());
    bytes.extend((RECORD_LEN as u32).to_le_bytes());
    bytes.extend(body);
    bytes.extend(trailer_len.to_le_bytes());
    bytes.extend(END_MAGIC);
    bytes
}

/// The real file with some bytes overwritten, and maybe cut short.
fn damaged() -> impl Strategy<Value = Vec<u8>> {
    let len = valid_file().len();
    (prop::collection::vec((0..len, any::<u8>()), 1..8), prop::option::of(0..len)).prop_map(|(changes, cut)| {
        let mut bytes = valid_file().to_vec();
        for (at, byte) in changes {
            bytes[at] = byte;
        }
        bytes.truncate(cut.unwrap_or(bytes.len()));
        bytes
    })
}

/// A trailer length within the file but beyond any real trailer is
/// refused before it is allocated (a sparse file: no disk used).
#[test]
fn a_huge_trailer_length_is_refused() {
    let dir = scratch_dir("huge-trailer");
    let path = dir.join("t.timeline");
    let len = MAX_TRAILER + 1024;
    let mut bytes = framed_bytes(&[], MAX_TRAILER + 1);
    let footer = bytes.split_off(bytes.len() - 16);
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(len).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, &bytes, 0).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, &footer, len - 16).unwrap();
    let err = read(&path).unwrap_err().to_string();
    assert!(err.ends_with(&format!("a trailer of {} bytes, more than the {MAX_TRAILER} a timeline can have", MAX_TRAILER + 1)), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Within the bound, a length read from a damaged file costs nothing
/// either: the trailer is parsed as it is read and fails at its first byte
/// (read into a buffer first, all 512 MiB of this hole would be allocated
/// and read).
#[test]
fn a_damaged_trailer_is_refused_at_its_first_byte() {
    let dir = scratch_dir("hole-trailer");
    let path = dir.join("t.timeline");
    let trailer_len = MAX_TRAILER / 2;
    let mut bytes = framed_bytes(&[], trailer_len);
    let footer = bytes.split_off(bytes.len() - 16);
    let file = std::fs::File::create(&path).unwrap();
    let len = trailer_len + 32;
    file.set_len(len).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, &bytes, 0).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, &footer, len - 16).unwrap();
    let started = std::time::Instant::now();
    let err = read(&path).unwrap_err().to_string();
    assert!(err.contains("corrupt timeline file: header: "), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(2), "{:?}", started.elapsed());
    std::fs::remove_dir_all(&dir).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_file_is_read_or_refused(bytes in prop_oneof![prop::collection::vec(any::<u8>(), 0..256), framed(), damaged()]) {
        static CASES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let dir = scratch_dir("proptest");
        let path = dir.join(format!("{}.timeline", CASES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)));
        std::fs::write(&path, &bytes).unwrap();
        let _ = read(&path);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
