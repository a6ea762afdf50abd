//! Whether an MP3 file states its length exactly, and its size.
//!
//! Symphonia fills an MP3 track's frame count either from a Xing/Info/VBRI header (exact) or
//! from an estimate over the file size (off by −23 % … +124 % for VBR files) and does not say
//! which. The prober only compares the packet scan against an exact header, so it asks here.
//! The header's byte count tells a cut file (shorter than stated) from one whose frames are
//! damaged in the middle (the demuxer skips them silently).

use crate::source::read_up_to;
use std::io::{self, Read, Seek, SeekFrom};

/// How many ID3v2 tags in a row are skipped before giving up.
const MAX_TAGS: usize = 4;

/// What the header of the first MPEG audio frame states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LengthHeader {
    /// Where the file is complete: the end of the MPEG stream (the tags before it plus the
    /// byte count the header states), when it states one.
    pub(crate) complete_at: Option<u64>,
}

/// The Xing, Info or VBRI header of the first MPEG audio frame (after any ID3v2 tags), or
/// `None` when there is none. Leaves the reader at an unspecified position.
pub(crate) fn length_header<R: Read + Seek + ?Sized>(
    reader: &mut R,
) -> io::Result<Option<LengthHeader>> {
    let mut pos = 0u64;
    for _ in 0..MAX_TAGS {
        reader.seek(SeekFrom::Start(pos))?;
        let mut header = [0u8; 10];
        if read_up_to(reader, &mut header)? < header.len() || &header[0..3] != b"ID3" {
            break;
        }
        let size = header[6..10]
            .iter()
            .fold(0u64, |acc, b| (acc << 7) | u64::from(b & 0x7F));
        let footer = if header[5] & 0x10 != 0 { 10 } else { 0 };
        pos += 10 + size + footer;
    }
    reader.seek(SeekFrom::Start(pos))?;
    // The tag sits after the side information (at most 32 bytes) or, for VBRI, at offset 36.
    let mut frame = [0u8; 64];
    let got = read_up_to(reader, &mut frame)?;
    Ok(stream_bytes(&frame[..got]).map(|bytes| LengthHeader {
        complete_at: bytes.map(|b| pos + b),
    }))
}

/// For a frame carrying a length header: `Some(the stream's byte count, when stated)`.
fn stream_bytes(frame: &[u8]) -> Option<Option<u64>> {
    let h = frame.get(0..4)?;
    if h[0] != 0xFF || h[1] & 0xE0 != 0xE0 {
        return None;
    }
    let mpeg1 = (h[1] >> 3) & 0x03 == 0b11;
    let mono = h[3] >> 6 == 0b11;
    let side_info = match (mpeg1, mono) {
        (true, false) => 32,
        (true, true) | (false, false) => 17,
        (false, true) => 9,
    };
    let be_u32 = |at: usize| {
        frame
            .get(at..at + 4)
            .map(|b| u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])))
    };
    let xing = 4 + side_info;
    match frame.get(xing..xing + 4) {
        Some(b"Xing") | Some(b"Info") => {
            // Flags: 1 = frame count present, 2 = byte count present (after the frames).
            let flags = be_u32(xing + 4).unwrap_or_default();
            let bytes_at = xing + 8 + if flags & 1 != 0 { 4 } else { 0 };
            Some(if flags & 2 != 0 {
                be_u32(bytes_at)
            } else {
                None
            })
        }
        // VBRI: tag, version, delay, quality, then the byte count.
        _ if frame.get(36..40) == Some(b"VBRI") => Some(be_u32(46)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn frame(header: [u8; 4], tag_at: usize, tag: &[u8; 4]) -> Vec<u8> {
        let mut bytes = header.to_vec();
        bytes.resize(4 + tag_at, 0);
        bytes.extend_from_slice(tag);
        // Flags: frames and bytes; 115 frames, 12_000 bytes.
        bytes.extend_from_slice(&3u32.to_be_bytes());
        bytes.extend_from_slice(&115u32.to_be_bytes());
        bytes.extend_from_slice(&12_000u32.to_be_bytes());
        bytes.resize(200, 0);
        bytes
    }

    #[test]
    fn finds_xing_info_and_vbri_after_the_side_information() {
        // MPEG-1 stereo: 32 bytes of side information.
        let stereo = frame([0xFF, 0xFB, 0x90, 0x04], 32, b"Xing");
        assert_eq!(stream_bytes(&stereo), Some(Some(12_000)));
        // MPEG-1 mono: 17.
        let mono = frame([0xFF, 0xFB, 0x90, 0xC4], 17, b"Info");
        assert_eq!(stream_bytes(&mono[..64]), Some(Some(12_000)));
        // MPEG-2 mono: 9.
        assert!(stream_bytes(&frame([0xFF, 0xF3, 0x10, 0xC4], 9, b"Info")).is_some());
        // VBRI: the byte count sits 10 bytes into the tag.
        let mut vbri = frame([0xFF, 0xFB, 0x90, 0x04], 32, b"VBRI");
        vbri[46..50].copy_from_slice(&5_000u32.to_be_bytes());
        assert_eq!(stream_bytes(&vbri), Some(Some(5_000)));
        assert_eq!(
            stream_bytes(&frame([0xFF, 0xFB, 0x90, 0x04], 17, b"Xing")),
            None
        );
        assert_eq!(stream_bytes(&[0u8; 64]), None);
    }

    #[test]
    fn skips_id3_tags() {
        let mut file = b"ID3\x04\0\0\0\0\x01\x00".to_vec();
        file.resize(10 + 128, 0);
        file.extend(frame([0xFF, 0xFB, 0x90, 0xC4], 17, b"Info"));
        let header = length_header(&mut Cursor::new(file)).unwrap();
        assert_eq!(
            header,
            Some(LengthHeader {
                complete_at: Some(138 + 12_000)
            })
        );
        let plain = frame([0xFF, 0xFB, 0x90, 0xC4], 40, b"Info");
        assert_eq!(length_header(&mut Cursor::new(plain)).unwrap(), None);
    }
}
