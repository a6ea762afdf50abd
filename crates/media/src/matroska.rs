//! Where a Matroska / WebM file is complete: the end of its `Segment`, as the element's size
//! states.
//!
//! symphonia 0.5 stops reading a Matroska file's clusters at the first element it cannot
//! parse, without an error: garbage in the middle of a cluster looks like the end of the data.
//! The packets then end short of the stated `Duration`, as in a cut file. The `Segment`'s size
//! tells the two apart: when the file holds all the bytes it announces, it was not cut.

use crate::source::read_up_to;
use std::io::{self, Read, Seek, SeekFrom};

/// The EBML header element.
const EBML: u64 = 0x1A45_DFA3;
/// The `Segment` element, which holds everything else.
const SEGMENT: u64 = 0x1853_8067;
/// `Void` elements may pad between top-level elements.
const VOID: u64 = 0xEC;
/// How many top-level elements are looked at before the `Segment`.
const MAX_ELEMENTS: usize = 8;

/// The byte offset where the `Segment` ends, when the file starts with an EBML header followed
/// by a `Segment` of known size. Leaves the reader at an unspecified position.
pub(crate) fn segment_end<R: Read + Seek + ?Sized>(reader: &mut R) -> io::Result<Option<u64>> {
    let mut pos = 0u64;
    for index in 0..MAX_ELEMENTS {
        reader.seek(SeekFrom::Start(pos))?;
        // An ID is at most 4 bytes, a size at most 8.
        let mut head = [0u8; 12];
        let got = read_up_to(reader, &mut head)?;
        let Some((id, id_len)) = vint(&head[..got], true) else {
            return Ok(None);
        };
        let Some((size, size_len)) = head.get(id_len..got).and_then(|rest| vint(rest, false))
        else {
            return Ok(None);
        };
        let data_at = pos + (id_len + size_len) as u64;
        // An all-ones size is "unknown" (a live stream): nothing to compare with.
        let unknown = size == (1u64 << (7 * size_len)) - 1;
        match id {
            SEGMENT if unknown => return Ok(None),
            SEGMENT => return Ok(data_at.checked_add(size)),
            EBML if index == 0 && !unknown => {}
            VOID if !unknown => {}
            _ => return Ok(None),
        }
        pos = data_at.saturating_add(size);
    }
    Ok(None)
}

/// An EBML variable-length integer at the start of `buf`: `(value, length in bytes)`. IDs keep
/// their length marker bit (`keep_marker`), sizes drop it.
fn vint(buf: &[u8], keep_marker: bool) -> Option<(u64, usize)> {
    let first = *buf.first()?;
    let len = first.leading_zeros() as usize + 1;
    let max = if keep_marker { 4 } else { 8 };
    if len > max {
        return None;
    }
    let bytes = buf.get(..len)?;
    let first = if keep_marker {
        u64::from(first)
    } else {
        u64::from(first) & ((1u64 << (8 - len)) - 1)
    };
    let value = bytes[1..]
        .iter()
        .fold(first, |acc, b| (acc << 8) | u64::from(*b));
    Some((value, len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn end(file: &[u8]) -> Option<u64> {
        segment_end(&mut Cursor::new(file)).unwrap()
    }

    #[test]
    fn the_segment_size_after_the_ebml_header_gives_the_end() {
        // EBML header (4-byte ID, 1-byte size 0x83 = 3, 3 bytes), Segment with an 8-byte size.
        let mut file = vec![0x1A, 0x45, 0xDF, 0xA3, 0x83, 1, 2, 3];
        file.extend_from_slice(&[0x18, 0x53, 0x80, 0x67, 0x01, 0, 0, 0, 0, 0, 0x10, 0x00]);
        assert_eq!(end(&file), Some(8 + 12 + 0x1000));
        // A Void element between them is skipped.
        let mut padded = file[..8].to_vec();
        padded.extend_from_slice(&[0xEC, 0x82, 0, 0]);
        padded.extend_from_slice(&file[8..]);
        assert_eq!(end(&padded), Some(12 + 12 + 0x1000));
    }

    #[test]
    fn an_unknown_size_or_other_bytes_give_nothing() {
        let mut live = vec![0x1A, 0x45, 0xDF, 0xA3, 0x80];
        live.extend_from_slice(&[0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
        live.extend_from_slice(&[0xFF, 0xFF]);
        assert_eq!(end(&live), None);
        assert_eq!(end(b"OggS\0\x02"), None);
        assert_eq!(end(&[0x1A, 0x45]), None);
        assert_eq!(end(&[]), None);
        assert_eq!(vint(&[0x81], false), Some((1, 1)));
        assert_eq!(vint(&[0x40, 0x02], false), Some((2, 2)));
        assert_eq!(vint(&[0x00], false), None);
    }
}
